"""The Tune callback that marks a sweep's moments in its Phases: first trial, first result,
last trial's end; and starts, at the first result, what is best done once trials run."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ray import tune

from tuner.engine.phases import Phases


class TrialMoments(tune.Callback):  # type: ignore[misc]
    """Marks the first trial's start, the first result and the last trial's end, and
    calls `at_first_result` once, at the first result."""

    def __init__(self, phases: Phases, at_first_result: Callable[[], None] | None = None) -> None:
        self._phases = phases
        self._seen: set[str] = set()
        self._last_end: float | None = None
        self._at_first_result = at_first_result

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles callbacks into the experiment; a restore brings its own.
        return {"_phases": Phases(), "_seen": set(), "_last_end": None, "_at_first_result": None}

    def _once(self, name: str) -> None:
        if name not in self._seen:
            self._seen.add(name)
            self._phases.mark(name)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._once("first trial started")

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        if "first result" not in self._seen and self._at_first_result is not None:
            self._at_first_result()
        self._once("first result")

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._last_end = time.time()

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._last_end = time.time()

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        if self._last_end is not None:
            self._phases.mark("last trial ended", at=self._last_end)
