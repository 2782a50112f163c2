"""The budget's max_trials for Ray's grid and random generator: at most N trials."""

from __future__ import annotations

from typing import Any

from ray.tune.search import BasicVariantGenerator


class CappedVariantGenerator(BasicVariantGenerator):  # type: ignore[misc]
    """Ray's grid and random generator, creating at most `max_trials` trials."""

    def __init__(self, max_trials: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_trials = max_trials
        self.created = 0

    def next_trial(self) -> Any:
        if self.created >= self.max_trials:
            self.set_finished()
            return None
        trial = super().next_trial()
        if trial is not None:
            self.created += 1
        return trial
