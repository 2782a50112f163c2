"""When a trial ends by the sweep file's `stop` rules, as Ray Tune stoppers.

Ray's own `stop={key: value}` ends a trial once `result[key] >= value`; for a metric
that is minimized that stops at the first result. Here the sweep's metric is reached in
its `mode`'s direction and every other key (`training_iteration` included) keeps Ray's
rule. Ray's MaximumIterationStopper is not used: it counts the results it sees, which
starts again from 0 after a resume; the result's own `training_iteration` does not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

from ray.tune.stopper import CombinedStopper, Stopper

from tuner.spec import SweepSpec


def reached(value: Any, threshold: float, *, decreasing: bool) -> bool:
    """Whether a reported value meets its stop threshold; a missing or NaN one never does."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    if math.isnan(number):
        return False
    return number <= threshold if decreasing else number >= threshold


class ThresholdStopper(Stopper):  # type: ignore[misc]
    """Ends a trial once any of its rules is reached: (key, threshold, decreasing)."""

    def __init__(self, rules: list[tuple[str, float, bool]]) -> None:
        self.rules = rules

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return any(
            key in result and reached(result[key], threshold, decreasing=decreasing)
            for key, threshold, decreasing in self.rules
        )

    def stop_all(self) -> bool:
        return False


def build_stoppers(spec: SweepSpec) -> list[Stopper]:
    """The sweep file's `stop` rules as Ray stoppers (none when it has none)."""
    if not spec.stop:
        return []
    decreasing = spec.mode == "min"
    rules = [
        (key, float(value), key == spec.metric and decreasing) for key, value in spec.stop.items()
    ]
    return [ThresholdStopper(rules)]


def combined(stoppers: list[Stopper]) -> Stopper | None:
    """One stopper for RunConfig(stop=...): None, the one, or Ray's CombinedStopper."""
    if not stoppers:
        return None
    return stoppers[0] if len(stoppers) == 1 else CombinedStopper(*stoppers)


def same_failures(ends: Sequence[str | None], after: int) -> str | None:
    """The error when the first `after` trials to end all failed with it, else None.

    `ends` holds each ended trial's error line (None for a trial that did not fail), in
    the order the trials ended. Lines are compared exactly: errors that name their
    config values ("diverged at lr=0.3") differ, as a sweep's bad configurations do.
    """
    if after < 1 or len(ends) < after:
        return None
    first = ends[0]
    if first is None or any(end != first for end in ends[1:after]):
        return None
    return first


class FailFast(Stopper):  # type: ignore[misc]
    """Ray stopper that ends the sweep when `same_failures` holds.

    Ray pickles its stopper with the experiment; like EarlyStops, this one pickles as its
    key, so the copy Ray holds and the callback feeding it share one ledger per process.
    """

    _shared: ClassVar[dict[str, FailFast]] = {}

    def __init__(self, key: str, after: int | None) -> None:
        self.key = key
        self.after = after
        self._ends: list[str | None] = []
        self._seen: set[str] = set()

    @classmethod
    def shared(cls, key: str, after: int | None) -> FailFast:
        if key not in cls._shared:
            cls._shared[key] = cls(key, after)
        return cls._shared[key]

    def __reduce__(self) -> tuple[Any, tuple[str, int | None]]:
        return (FailFast.shared, (self.key, self.after))

    def record(self, trial_id: str, error: str | None) -> None:
        """A trial ended: with `error` (its line), or None when it did not fail."""
        # The rule reads the first `after` ends only: a long sweep keeps no more.
        if self.after is None or len(self._ends) >= self.after:
            return
        if trial_id not in self._seen:
            self._seen.add(trial_id)
            self._ends.append(error)

    @property
    def tripped(self) -> str | None:
        """The error every one of the first trials failed with, once the rule holds."""
        return None if self.after is None else same_failures(self._ends, self.after)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.tripped is not None
