"""Fail fast: a trainable whose first trials all fail alike is not run again and again.

A bug in training code (a `ray.train` call inside Tune, a wrong key) fails every trial
the same way; without this a sweep of 100 samples fails 100 times before it says so.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback

from tuner.search.stops import FailFast
from tuner.tracking.results import error_summary


class FailFastWatch(Callback):  # type: ignore[misc]
    """Tells the FailFast stopper how each trial ended, in the order they end."""

    def __init__(self, fail_fast: FailFast) -> None:
        self.fail_fast = fail_fast

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.fail_fast.record(trial.trial_id, None)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.fail_fast.record(trial.trial_id, error_summary(trial))
