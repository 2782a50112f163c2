"""When a trial ends by the sweep file's `stop` rules, as Ray Tune stoppers.

Ray's own `stop={key: value}` ends a trial once `result[key] >= value`; for a metric
that is minimized that stops at the first result. Here the sweep's metric is reached in
its `mode`'s direction and every other key (`training_iteration` included) keeps Ray's
rule. Ray's MaximumIterationStopper is not used: it counts the results it sees, which
starts again from 0 after a resume; the result's own `training_iteration` does not.
"""

from __future__ import annotations

import math
from typing import Any

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
