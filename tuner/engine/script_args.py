"""A trainable module written as a script: it parses its command line when imported.

Training code often starts as `python train.py --epochs 5`, with `argparse` at module
level, and is then named in a sweep file as it is. Imported by `tuner run`, its parser
read tuner's arguments (`run sweep.yaml`) and exited: the user saw their own script's
usage line and `unrecognized arguments: run sweep.yaml`, as if tuner had refused its
command. In a Ray worker it read Ray's arguments and the worker died, failing every
trial with "The actor is dead". So the user's module is imported with a command line of
its name alone, as `python train.py` gives it: its parser takes its defaults. The
function is carried to the workers by its name, to be imported there the same way
(pickled by reference, Ray's worker would import it with Ray's arguments in sys.argv).
A class `tune.Trainable` travels by value as tuner's subclass of it, the user's class
its base, by reference: `imported_first` puts a base before it whose arrival imports the
user's module the same way, before Python looks the user's class up.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, NoReturn


@contextmanager
def script_argv(module_name: str) -> Iterator[None]:
    """sys.argv as `python <module>` with no arguments leaves it, for an import."""
    saved, sys.argv = sys.argv, [module_name]
    try:
        yield
    finally:
        sys.argv = saved


def import_user_module(module_name: str) -> ModuleType:
    """`module_name` imported as a script with no arguments."""
    with script_argv(module_name):
        return importlib.import_module(module_name)


class ParserExited(SystemExit):
    """argparse's error() in a user's module imported by the driver: its exit, status 2,
    with the parser's message kept for tuner's one line (not printed as a usage block
    above it). A SystemExit still, for a module that catches its parser's exit."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message


def _raise_exit(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    raise ParserExited(message)


def import_in_driver(module_name: str) -> ModuleType:
    """`import_user_module` where tuner says what went wrong (see exit_problem): a parser's
    error raised as ParserExited. Set on argparse's class during the import only: the
    driver imports before Ray starts, no thread of tuner's parses then."""
    saved = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = _raise_exit  # type: ignore[method-assign,assignment]
    try:
        return import_user_module(module_name)
    finally:
        argparse.ArgumentParser.error = saved  # type: ignore[method-assign]


def exit_problem(module_name: str, exc: SystemExit) -> str:
    """One line for a user's module that exited when imported. Without it, tuner itself
    exited with the script's usage line, or a worker died with it."""
    if isinstance(exc, ParserExited):
        return (
            f"importing {module_name!r}: its argument parser exited (status 2): "
            f"{exc.message}; tuner imports a trainable module with no command-line "
            "arguments: give each a default (values go in the sweep's config) or parse "
            "them under if __name__ == '__main__':"
        )
    return (
        f"importing {module_name!r} called sys.exit({exc.code!r}): a trainable module "
        "must not exit when imported; parse arguments under if __name__ == '__main__':"
    )


class ByName:
    """Holds a user's function; pickled, it travels as its module and name and is
    imported under `script_argv` where it arrives. One not reachable by its name (a
    closure, a wrapper of tuner's) travels as cloudpickle sends it."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __reduce__(self) -> tuple[Any, ...]:
        module, qualname = getattr(self.fn, "__module__", None), self.fn.__qualname__
        # A script's own `__main__` is another module in a worker: sent as it is.
        if module in (None, "__main__") or _named(module, qualname) is not self.fn:
            return (ByName, (self.fn,))
        return (_arrived, (module, qualname))


def _named(module_name: str, qualname: str) -> Any:
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found


def _arrived(module_name: str, qualname: str) -> ByName:
    import_user_module(module_name)
    return ByName(_named(module_name, qualname))


class _ImportsAsScript:
    """Pickled, imports `module_name` under `script_argv` where it arrives."""

    def __init__(self, module_name: str) -> None:
        self.module_name = module_name

    def __reduce__(self) -> tuple[Any, ...]:
        return (_imported, (self.module_name,))


def _imported(module_name: str) -> _ImportsAsScript:
    import_user_module(module_name)
    return _ImportsAsScript(module_name)


def imported_first(cls: type[Any]) -> type[Any]:
    """A base to list before `cls` in a subclass sent by value (`class C(first, cls)`).

    cloudpickle sends a subclass made in a function by value, its bases one by one, in
    order, each whole with its class dict; the user's class by reference, which the
    worker resolves by importing its module with Ray's arguments in sys.argv. This base
    is sent by value too, before it, and its dict holds what imports that module as a
    script first: the lookup of the user's class then finds the module imported.
    """
    module = cls.__module__
    # A script's own `__main__` is another module in a worker, and a class not reachable
    # by its name is sent by value: neither is imported by name there.
    by_name = module != "__main__" and _named(module, cls.__qualname__) is cls

    class ImportedAsScript:
        _tuner_imports_as_script = _ImportsAsScript(module) if by_name else None

    return ImportedAsScript
