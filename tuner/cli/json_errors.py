"""`--json` on an error: a script that reads a command's stdout gets JSON either way.

The error stays one `error:` line on stderr with its exit status; with `--json` stdout
also holds `{"error": "<that line's message>", "exit_status": N}`, where it held nothing
and `json.loads` of it failed.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import ParamSpec

import typer

P = ParamSpec("P")

_AS_JSON: ContextVar[bool] = ContextVar("tuner_errors_as_json", default=False)


@contextmanager
def _errors_as_json(on: bool) -> Iterator[None]:
    token = _AS_JSON.set(on)
    try:
        yield
    finally:
        _AS_JSON.reset(token)


def json_errors(command: Callable[P, None]) -> Callable[P, None]:
    """A command whose `--json` (its `as_json` parameter) covers its errors too."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        with _errors_as_json(bool(kwargs.get("as_json"))):
            command(*args, **kwargs)

    return run


def echo_error(message: str, code: int) -> None:
    """The error as JSON on stdout, when the running command was asked for JSON."""
    if _AS_JSON.get():
        typer.echo(json.dumps({"error": message, "exit_status": code}))
