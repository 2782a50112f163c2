"""Training a trial did twice: what a restart from an older checkpoint cost.

When a trial loses its worker (a spot node reclaimed, a crash) it restarts from its last
checkpoint. The epochs it had finished after that checkpoint are trained again and
reported again (tuner logs each once: the repeats are recognized), and the epoch in
progress when the worker died is lost. Both are counted here, from what the driver
sees: a repeated result's `time_this_iter_s`, and the time since the trial's last result
when Ray says it will restart, at most one epoch as long as its last (the rest of that
wait is Ray noticing the loss, not training). What a driver that died itself lost is not seen: the
repeats after `tuner resume` are counted, the epoch in flight is not.

A trial that checkpointed inside its epoch on a spot notice, and then waited for its
node to go, lost nothing of the epoch in flight: its first result after the restart
says so (`RESUMED_WITHIN_EPOCH`), and that restart's estimate is taken back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tuner.tracking.results import as_number
from tuner.trainer.checkpoint_policy import RESUMED_WITHIN_EPOCH


@dataclass
class LostWork:
    seconds: dict[str, float] = field(default_factory=dict)  # trial id -> lost so far
    _last_seen: dict[str, float] = field(default_factory=dict)  # monotonic clock
    _last_took: dict[str, float] = field(default_factory=dict)  # its last result's seconds
    _in_flight: dict[str, float] = field(default_factory=dict)  # counted at its last restart

    def started(self, trial_id: str) -> None:
        self._last_seen[trial_id] = time.monotonic()

    def result(self, trial_id: str, result: dict[str, Any], *, repeated: bool) -> None:
        self._last_seen[trial_id] = time.monotonic()
        took = max(0.0, as_number(result.get("time_this_iter_s")) or 0.0)
        self._last_took[trial_id] = took
        in_flight = self._in_flight.pop(trial_id, 0.0)
        if RESUMED_WITHIN_EPOCH in result and in_flight:
            self.seconds[trial_id] = max(0.0, self.seconds.get(trial_id, 0.0) - in_flight)
        if repeated:
            self.seconds[trial_id] = self.seconds.get(trial_id, 0.0) + took

    def worker_lost(self, trial_id: str) -> None:
        """Ray restarts the trial: what it trained since its last result is gone."""
        since = self._last_seen.pop(trial_id, None)
        if since is not None:
            lost = time.monotonic() - since
            epoch = self._last_took.get(trial_id)
            if epoch:
                lost = min(lost, epoch)
            self._in_flight[trial_id] = lost
            self.seconds[trial_id] = self.seconds.get(trial_id, 0.0) + lost

    def ended(self, trial_id: str) -> None:
        """The trial ended for good: only what it lost stays (in `seconds`, if any)."""
        for clock in (self._last_seen, self._last_took, self._in_flight):
            clock.pop(trial_id, None)

    def of(self, trial_id: str) -> float:
        return self.seconds.get(trial_id, 0.0)

    def total(self) -> float:
        return sum(self.seconds.values())


def seconds_text(seconds: float) -> str:
    """How a tag holds it: seconds, to a tenth."""
    return f"{seconds:.1f}"
