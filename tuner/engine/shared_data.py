"""A built-in trainer's data, loaded and split once per sweep and handed to every trial.

Without this each trial process rebuilds its data set itself: a synthetic set of
50,000 x 256 takes ~2 s to generate, a file is read and split again, and on a cluster
every node reads the same file. The sweep's driver has loaded the data already (the
sweep's checks read it before Ray starts); it puts the splits in Ray's object store
once, and each trial's process takes them from there before training. Numpy arrays
come back from the object store without a copy (read-only, shared between the trials
on a node), so packed trials do not each hold the data set in memory either.

Only when the sweep fixes its data: a sweep that searches a data knob (dataset,
data_path, synthetic_samples...) gives each trial its own, loaded in its process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ray

from tuner.engine.trainables import DATA_KNOBS, data_sources, fold_counts, sweep_models
from tuner.spec import SweepSpec
from tuner.trainer.registry import BUILTINS

if TYPE_CHECKING:  # tuner.trainer.data imports scikit-learn: only when data is shared
    from tuner.trainer.data import DataSource, Splits, Task

# More cv_folds values than this a sweep may draw are left to the trials to split.
_MOST_FOLD_COUNTS = 8

DataKey = tuple["DataSource", "Task", int]


class SharedData:
    """The sweep's splits in Ray's object store, by what decides them (picklable: it
    travels with the trainable, holding only object references)."""

    def __init__(self, splits: dict[DataKey, Any]) -> None:
        self._refs = {key: ray.put(value) for key, value in splits.items()}

    @classmethod
    def of(cls, spec: SweepSpec) -> SharedData | None:
        """The data every trial of `spec` trains on, loaded here once; None for user
        trainables and for sweeps that search the data."""
        builtin = BUILTINS.get(spec.trainable)
        if builtin is None or spec.params.keys() & DATA_KNOBS:
            return None
        task: Task = builtin.task  # type: ignore[assignment]
        knobs = builtin.knobs.model_validate(spec.config)
        _, models = sweep_models(spec, knobs.model)
        counts, _ = fold_counts(spec, knobs.cv_folds)
        # 1 (no folds) always: the test score and the model a checkpoint holds use it.
        # Each fold count is a copy of the data: too many are left to the trials.
        folds = {1, *counts} if len(counts) <= _MOST_FOLD_COUNTS else {1}
        loaded = {
            (source, task, count): _loaded(source, task, count)
            for source in data_sources(knobs, models)  # a copy per way it is read
            for count in folds
        }
        return cls({key: splits for key, splits in loaded.items() if splits is not None})

    @property
    def keys(self) -> list[DataKey]:
        return list(self._refs)

    def take(self) -> None:
        """In a trial's process: use the sweep's splits (once per process)."""
        from tuner.trainer.data import adopt_splits, adopted

        for key, ref in self._refs.items():
            if not adopted(*key):
                adopt_splits(*key, ray.get(ref))

    def around(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn` (a trainable, or a multi-worker trial's per-worker function), taking the
        sweep's data before it starts."""

        @functools.wraps(fn)
        def with_sweep_data(*args: Any, **kwargs: Any) -> Any:
            self.take()
            return fn(*args, **kwargs)

        return with_sweep_data


def _loaded(source: DataSource, task: Task, folds: int) -> tuple[Splits, ...] | None:
    from tuner.trainer.data import DataError, sweep_splits

    try:
        return sweep_splits(source, task, folds)
    except DataError:
        return None  # a trial drawing these folds fails with the reason, as before
