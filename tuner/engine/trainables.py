"""Resolve a sweep's `trainable` reference to a function, and check it before Ray starts.

A trainable is `builtin:NAME` (shipped with tuner) or `package.module:function` (user
code importable from the working directory or the environment). Both follow one
contract: `fn(config: dict) -> None`, reporting with `ray.tune.report` and resuming
from `ray.tune.get_checkpoint()`.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tuner.engine.script_args import exit_problem, import_in_driver
from tuner.engine.worker_checks import (
    check_batch_norm_split,
    check_per_worker_function,
    check_sync_batch_norm,
)
from tuner.spec import (
    CategoricalParam,
    FloatParam,
    GridParam,
    IntParam,
    KeyedProblem,
    PbtScheduler,
    SpecError,
    SweepSpec,
)
from tuner.spec.names import file_path_problem
from tuner.spec.pbt import mutations_of
from tuner.trainer.knobs import SEQUENCE_MODELS, TORCHVISION_BLOCKS, TrainerKnobs
from tuner.trainer.registry import BUILTINS, Builtin

if TYPE_CHECKING:
    from tuner.tracking.datasets import DatasetFields
    from tuner.trainer.data import DataSource

Trainable = Callable[[dict[str, Any]], None]


def _import_path(ref: str) -> str:
    if ref.startswith("builtin:"):
        if ref not in BUILTINS:
            known = ", ".join(sorted(BUILTINS))
            raise SpecError(None, "trainable", f"unknown built-in {ref!r} (known: {known})")
        return BUILTINS[ref].function
    return ref


def resolve_trainable(ref: str) -> Trainable:
    """Import and return the function behind `ref`; SpecError if it cannot be used."""
    module_name, _, attr = _import_path(ref).partition(":")
    # A console script's sys.path starts at its bin/ folder; user code lives in the cwd.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = import_in_driver(module_name)
    except SystemExit as exc:  # a script's parser, its required arguments missing
        raise SpecError(None, "trainable", exit_problem(module_name, exc)) from None
    except Exception as exc:  # any import-time failure of user code is the user's error
        if isinstance(exc, ModuleNotFoundError) and module_name.endswith(".py"):
            # `train.py:fit`: Python looked for a submodule `py` of a package `train`.
            raise SpecError(None, "trainable", file_path_problem(module_name, attr)) from None
        raise SpecError(
            None, "trainable", f"cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise SpecError(None, "trainable", f"module {module_name!r} has no attribute {attr!r}")
    if not callable(fn):
        raise SpecError(None, "trainable", f"{ref!r} is not callable")
    _check_shape(ref, fn)
    return fn  # type: ignore[no-any-return]


_RAY_TRAINABLE = "ray.tune.trainable.trainable.Trainable"


def _check_shape(ref: str, fn: Any) -> None:
    """A trainable is a function of one argument (the config) or a `ray.tune.Trainable`
    subclass; anything else Ray would take and fail on in every trial."""
    if isinstance(fn, type):
        # By name: `tuner validate` does not import Ray to check this.
        if not any(f"{c.__module__}.{c.__qualname__}" == _RAY_TRAINABLE for c in fn.__mro__):
            raise SpecError(
                None,
                "trainable",
                f"{ref!r} is a class but not a ray.tune.Trainable subclass; a trainable is "
                "a function of the config or a tune.Trainable",
            )
        return
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        # Ray calls it without awaiting it: the body never runs, and each trial would
        # fail as one that "reported no result", with a "never awaited" warning.
        raise SpecError(
            None,
            "trainable",
            f"{ref!r} is an async function; Ray Tune calls a trainable without awaiting "
            "it: make it a plain def (run async parts inside with asyncio.run)",
        )
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: Ray will say
        return
    try:
        signature.bind({})
    except TypeError:
        raise SpecError(
            None,
            "trainable",
            f"{ref!r} takes {_arguments(signature)}; a trainable takes one: the config",
        ) from None


def _arguments(signature: inspect.Signature) -> str:
    names = list(signature.parameters)
    return f"({', '.join(names)})" if names else "no arguments"


def check_trainable(spec: SweepSpec, *, hold_data: bool = True) -> None:
    """Fail fast on a trainable that will not run with this sweep's params and config.

    `hold_data`: load and split a built-in's data and keep it for the sweep; False (a
    check only, `tuner validate`) reads a .csv a chunk at a time instead."""
    builtin = BUILTINS.get(spec.trainable)
    if builtin is None:
        _import_path(spec.trainable)  # unknown builtin names fail here
        check_per_worker_function(spec, resolve_trainable(spec.trainable))
        return
    # Built-ins are checked against their knob schema without importing torch.
    named = [("metric", spec.metric)] if spec.objectives is None else []
    named += [(f"objectives[{i}].metric", o.metric) for i, o in enumerate(spec.objectives or [])]
    named += [(f"constraints[{i}].metric", c.metric) for i, c in enumerate(spec.constraints)]
    for key, metric in named:
        if metric not in builtin.metrics:
            raise SpecError(
                None,
                key,
                f"{spec.trainable} does not report {metric!r}; every epoch it reports "
                + ", ".join(builtin.metrics),
            )
    _check_knobs(spec, builtin.knobs)
    _check_mutations(spec, builtin.knobs)
    _check_torchvision(spec, builtin.knobs.model_validate(spec.config))
    check_sync_batch_norm(spec, builtin.knobs.model_validate(spec.config).sync_batch_norm)
    check_batch_norm_split(spec, builtin.knobs.model_validate(spec.config))
    _check_data(spec, builtin, hold_data)


def with_absolute_paths(spec: SweepSpec) -> SweepSpec:
    """A built-in's relative data_path is relative to where `tuner run` was started.

    Ray Tune runs each trial in its own working directory, so the trials get the path
    made absolute here, the same file `tuner validate` checked.
    """
    path = spec.config.get("data_path")
    if spec.trainable not in BUILTINS or not isinstance(path, str) or "://" in path:
        return spec
    absolute = os.path.abspath(os.path.expanduser(path))
    # abspath drops a trailing slash, which says "a folder of images": keep it, so a
    # trial on a missing folder says so rather than asking for a .csv file.
    if path.endswith(("/", os.sep)):
        absolute = absolute.rstrip(os.sep) + os.sep
    config = {**spec.config, "data_path": absolute}
    return spec.model_copy(update={"config": config})


def _problem(exc: ValidationError) -> tuple[tuple[Any, ...], str]:
    error = exc.errors()[0]
    return tuple(error["loc"]), error["msg"].removeprefix("Value error, ")


def _check_knobs(spec: SweepSpec, knobs: type[TrainerKnobs]) -> None:
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
    try:
        knobs.model_validate(spec.config)
    except ValidationError as exc:
        loc, problem = _problem(exc)
        key = f"config.{loc[0]}" if loc else "config"
        raise SpecError(None, key, f"{problem} ({spec.trainable})") from None
    for name, param in spec.params.items():
        if isinstance(param, FloatParam) and fields[name].annotation is int:
            raise SpecError(
                None, f"params.{name}.type", f"knob {name!r} is an integer; use type: int"
            )
        candidates: dict[str, Any]
        if isinstance(param, FloatParam | IntParam):
            candidates = {"low": param.low, "high": param.high}
        else:
            candidates = {f"{param.options_key}[{i}]": v for i, v in enumerate(param.options)}
        # A conditional param is sampled only beside one of its parents' listed values
        # (bidirectional when model is gru or lstm): check it beside each of those.
        parents = list((param.when or {}).items())
        beside = [
            dict(zip([p for p, _ in parents], values, strict=True))
            for values in itertools.product(*(values for _, values in parents))
        ]
        for (where, value), given in itertools.product(candidates.items(), beside):
            # With the fixed config: rules between knobs (warm-up < epochs) see real values.
            try:
                knobs.model_validate({**spec.config, **given, name: value})
            except ValidationError as exc:
                _, problem = _problem(exc)
                raise SpecError(
                    None, f"params.{name}.{where}", f"{problem} (knob {name!r} of {spec.trainable})"
                ) from None


def _check_mutations(spec: SweepSpec, knobs: type[TrainerKnobs]) -> None:
    """A PBT sweep mutates only knobs that may change mid-training, within their bounds."""
    if not isinstance(spec.scheduler, PbtScheduler):
        return
    try:
        mutations = mutations_of(spec, knobs.mutable())
    except KeyedProblem as exc:
        raise SpecError(None, exc.key, exc.problem) from None
    for name, mutation in mutations.items():
        if isinstance(mutation, CategoricalParam):
            candidates = {f"choices[{i}]": v for i, v in enumerate(mutation.choices)}
        else:
            candidates = {"low": mutation.low, "high": mutation.high}
        for where, value in candidates.items():
            try:
                knobs.model_validate({**spec.config, name: value})
            except ValidationError as exc:
                _, problem = _problem(exc)
                key = f"scheduler.mutations.{name}.{where}"
                raise SpecError(None, key, f"{problem} (knob {name!r})") from None


# The knobs that decide a built-in trainer's data (tuner.trainer.data.DataSource).
DATA_KNOBS = frozenset(
    {
        "dataset", "data_path", "label_column", "synthetic_samples", "synthetic_features",
        "synthetic_classes", "synthetic_difficulty", "image_size",
    }
)  # fmt: skip


def dataset_of(spec: SweepSpec) -> DatasetFields | None:
    """The data a built-in trainer's trials all train on, for MLflow; None for user
    trainables and sweeps that search the data (each trial's would differ)."""
    builtin = BUILTINS.get(spec.trainable)
    if builtin is None or spec.params.keys() & DATA_KNOBS:
        return None
    from tuner.tracking.datasets import dataset_fields
    from tuner.trainer.data import DataError, DataSource, load_splits

    knobs = builtin.knobs.model_validate(spec.config)
    try:
        splits = load_splits(knobs, builtin.task)  # type: ignore[arg-type]
    except DataError:
        return None  # each trial says why; the sweep's check said so first
    return dataset_fields(DataSource.of(knobs), splits)


def sweep_models(spec: SweepSpec, configured: str) -> tuple[str, list[str]]:
    """The models a sweep's trials may build, and the key that names them."""
    searched = spec.params.get("model")
    if isinstance(searched, CategoricalParam | GridParam):
        return "params.model", [str(option) for option in searched.options]
    return "config.model", [configured]


def _check_torchvision(spec: SweepSpec, knobs: TrainerKnobs) -> None:
    """A torchvision body needs a torchvision that imports beside this torch."""
    key, models = sweep_models(spec, knobs.model)
    for model in models:
        if model in TORCHVISION_BLOCKS:
            from tuner.trainer.vision import torchvision_problem  # imports torch

            problem = torchvision_problem(model)
            if problem is not None:
                raise SpecError(None, key, problem)


def _check_data(spec: SweepSpec, builtin: Builtin, hold: bool) -> None:
    """Load the data once when the sweep fixes it: a bad file fails here, not in N trials."""
    if spec.params.keys() & DATA_KNOBS:
        return  # searched data sources are checked by each trial
    from tuner.trainer import data

    task: data.Task = builtin.task  # type: ignore[assignment]
    knobs = builtin.knobs.model_validate(spec.config)
    key, models = sweep_models(spec, knobs.model)
    scanned = None
    # Split as the trials will train on it, and kept: the sweep hands these very splits
    # to its trials (tuner.engine.shared_data). Only checked, a .csv is scanned instead.
    for source, readers in data_sources(knobs, models).items():
        try:
            scanned = None if hold else data.scanned_arrays(source, task)
            shape = scanned[1] if scanned else data.sweep_splits(source, task, 1)[0].feature_shape
        except data.DataError as exc:
            raise SpecError(None, exc.key, exc.problem) from None
        for model in readers:
            problem = data.model_problem(model, shape)
            if problem is not None:
                raise SpecError(None, key, problem)
    # Each class needs a row per fold: check the most folds the sweep may train.
    counts, folds_key = fold_counts(spec, knobs.cv_folds)
    folds = max(counts)
    if folds > 1:
        arrays = scanned[0] if scanned else data.load_arrays(source, task)
        problem = data.fold_problem(arrays, task, folds)
        if problem is not None:
            where = source.data_path or f"dataset {source.dataset!r}"
            raise SpecError(None, folds_key, f"{where}: {problem}")


def data_sources(knobs: TrainerKnobs, models: list[str]) -> dict[DataSource, list[str]]:
    """The data sources a sweep's `models` read, each with the models that read it.
    Sequence models read a 3-D .npz as (N, T, F), the others as grey images: the data
    is loaded each way the sweep's models will (the images' way first)."""
    from tuner.trainer.data import DataSource

    readers: dict[DataSource, list[str]] = {}
    for model in models:
        source = dataclasses.replace(DataSource.of(knobs), sequences=model in SEQUENCE_MODELS)
        readers.setdefault(source, []).append(model)
    return dict(sorted(readers.items(), key=lambda item: item[0].sequences))


def fold_counts(spec: SweepSpec, fixed: int) -> tuple[list[int], str]:
    """The cv_folds values a trial of `spec` may draw, and the key that sets them."""
    searched = spec.params.get("cv_folds")
    if isinstance(searched, IntParam):
        return list(range(int(searched.low), int(searched.high) + 1)), "params.cv_folds"
    if isinstance(searched, CategoricalParam | GridParam):
        return [int(option) for option in searched.options], "params.cv_folds"
    return [fixed], "config.cv_folds"
