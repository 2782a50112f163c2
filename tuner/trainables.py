"""Resolve a sweep's `trainable` reference to a function, and check it before Ray starts.

A trainable is `builtin:NAME` (shipped with tuner) or `package.module:function` (user
code importable from the working directory or the environment). Both follow one
contract: `fn(config: dict) -> None`, reporting with `ray.tune.report` and resuming
from `ray.tune.get_checkpoint()`.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from tuner.spec import FloatParam, GridParam, IntParam, SpecError, SweepSpec
from tuner.trainer.knobs import KNOBS_BY_TRAINABLE

Trainable = Callable[[dict[str, Any]], None]

BUILTIN_TRAINABLES: dict[str, str] = {
    "builtin:classifier": "tuner.trainer.classifier:train_classifier",
}


def _import_path(ref: str) -> str:
    if ref.startswith("builtin:"):
        if ref not in BUILTIN_TRAINABLES:
            known = ", ".join(sorted(BUILTIN_TRAINABLES))
            raise SpecError(None, "trainable", f"unknown built-in {ref!r} (known: {known})")
        return BUILTIN_TRAINABLES[ref]
    return ref


def resolve_trainable(ref: str) -> Trainable:
    """Import and return the function behind `ref`; SpecError if it cannot be used."""
    module_name, _, attr = _import_path(ref).partition(":")
    # A console script's sys.path starts at its bin/ folder; user code lives in the cwd.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of user code is the user's error
        raise SpecError(
            None, "trainable", f"cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise SpecError(None, "trainable", f"module {module_name!r} has no attribute {attr!r}")
    if not callable(fn):
        raise SpecError(None, "trainable", f"{ref!r} is not callable")
    return fn  # type: ignore[no-any-return]


def check_trainable(spec: SweepSpec) -> None:
    """Fail fast on a trainable that will not run with this sweep's params and config."""
    knobs = KNOBS_BY_TRAINABLE.get(spec.trainable)
    if knobs is None:
        _import_path(spec.trainable)  # unknown builtin names fail here
        if not spec.trainable.startswith("builtin:"):
            resolve_trainable(spec.trainable)
        return
    # Built-ins are checked against their knob schema without importing torch.
    _check_knobs(spec, knobs)


def _check_knobs(spec: SweepSpec, knobs: type[BaseModel]) -> None:
    fields = knobs.model_fields
    known = ", ".join(fields)
    for section, names in (("params", spec.params), ("config", spec.config)):
        for name in names:
            if name not in fields:
                raise SpecError(
                    None,
                    f"{section}.{name}",
                    f"{spec.trainable} has no knob {name!r} (knobs: {known})",
                )
    for name, value in spec.config.items():
        _check_value(spec, knobs, f"config.{name}", name, value)
    for name, param in spec.params.items():
        if isinstance(param, FloatParam) and fields[name].annotation is int:
            raise SpecError(
                None, f"params.{name}.type", f"knob {name!r} is an integer; use type: int"
            )
        if isinstance(param, FloatParam | IntParam):
            _check_value(spec, knobs, f"params.{name}.low", name, param.low)
            _check_value(spec, knobs, f"params.{name}.high", name, param.high)
        else:
            values = param.values if isinstance(param, GridParam) else param.choices
            key = "values" if isinstance(param, GridParam) else "choices"
            for index, value in enumerate(values):
                _check_value(spec, knobs, f"params.{name}.{key}[{index}]", name, value)


def _check_value(spec: SweepSpec, knobs: type[BaseModel], key: str, name: str, value: Any) -> None:
    try:
        knobs.model_validate({name: value})
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise SpecError(None, key, f"{problem} (knob {name!r} of {spec.trainable})") from None
