"""A sweep's trials counted as its driver sees them, kept on the sweep's run.

`tuner status` used to page in every child run to count states, sum hours and find the
best: 19 s for a 10,000-trial sweep through a tracking server on PostgreSQL. The driver
knows all of it already. It keeps one small record per trial and writes the counts to
the sweep's run as one JSON tag (`tuner.trials`), at most every `TALLY_PERIOD_S` while
the sweep runs and once more, marked final, when it ends; `tuner status` then reads one
run. The counts follow the rules of the full read (tuner.tracking.status), which stays
for a sweep whose driver died before its final tally.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

TAG_TRIALS = "tuner.trials"
# The tracking writer's key for the sweep's own run (trials are keyed by Tune's trial ids).
SWEEP_RUN = "sweep"
# How stale a running sweep's counts may be; one small write to the sweep's run each time.
TALLY_PERIOD_S = 2.0

# A run's state as `tuner status` counts it: its MLflow status in lower case, but an
# ASHA-stopped trial's KILLED run is "stopped_early".
RUNNING = "running"
STOPPED_EARLY = "stopped_early"
FAILED = "failed"


def state_of(run_status: str, *, stopped_early: bool) -> str:
    """The state `tuner status` counts a run in, from its MLflow status."""
    return STOPPED_EARLY if stopped_early and run_status == "KILLED" else run_status.lower()


@dataclass(slots=True)
class TrialRecord:
    """What the counts need of one trial's run."""

    state: str  # running, finished, stopped_early, failed or killed (`state_of`)
    value: float | None = None  # its latest value of the sweep's metric
    held: dict[str, float] = field(default_factory=dict)  # cpu_hours, gpu_hours, cost_usd
    lost_work_s: float = 0.0
    workers: str | None = None  # a multi-worker trial's workers, in words


class SweepTally:
    """The sweep's trials by state, their hours, and the best value so far."""

    def __init__(self, metric: str, mode: str, period_s: float = TALLY_PERIOD_S) -> None:
        self._metric = metric
        self._sign = -1.0 if mode == "min" else 1.0
        self._period_s = period_s
        self._records: dict[str, TrialRecord] = {}
        self._changed = False
        self._written_at = -math.inf

    @property
    def metric(self) -> str:
        return self._metric

    def seed(self, trial_id: str, record: TrialRecord) -> None:
        """A run from before a resume, as the tracking store holds it."""
        self._records[trial_id] = record
        self._changed = True

    def running(self, trial_id: str, workers: str | None = None) -> None:
        """The trial's run was created, or reopened by a resume or a restart."""
        record = self._records.get(trial_id)
        if record is None:
            self._records[trial_id] = TrialRecord(RUNNING, workers=workers)
        else:
            record.state = RUNNING
        self._changed = True

    def value(self, trial_id: str, value: float) -> None:
        """The trial logged `value` for the sweep's metric."""
        record = self._records.setdefault(trial_id, TrialRecord(RUNNING))
        record.value = value
        self._changed = True

    def lost_work(self, trial_id: str, seconds: float) -> None:
        self._records.setdefault(trial_id, TrialRecord(RUNNING)).lost_work_s = seconds
        self._changed = True

    def ended(self, trial_id: str, state: str, held: dict[str, float], lost_work_s: float) -> None:
        record = self._records.setdefault(trial_id, TrialRecord(state))
        record.state = state
        # A run's hours are written at its end; a reopened run's older ones stay until then.
        record.held = {**record.held, **held}
        record.lost_work_s = lost_work_s
        self._changed = True

    def due(self, now: float | None = None) -> bool:
        """Whether the counts changed and the last write is `period_s` old."""
        now = time.monotonic() if now is None else now
        return self._changed and now - self._written_at >= self._period_s

    def tag(self, *, final: bool = False, now: float | None = None) -> dict[str, str]:
        """The sweep run's tag with the counts as they are; the next write waits a period."""
        self._written_at = time.monotonic() if now is None else now
        self._changed = False
        return {TAG_TRIALS: json.dumps(self.summary(final=final), separators=(",", ":"))}

    def summary(self, *, final: bool = False) -> dict[str, Any]:
        """The counts, as `tuner status` reads them back (tracking.status.TrialCounts)."""
        states: Counter[str] = Counter()
        workers: Counter[str] = Counter()
        held: dict[str, float] = {}
        lost_work = 0.0
        best: tuple[float, str] | None = None
        for trial_id, record in self._records.items():
            states[record.state] += 1
            if record.workers is not None:
                workers[record.workers] += 1
            for key, hours in record.held.items():
                held[key] = held.get(key, 0.0) + hours
            lost_work += record.lost_work_s
            # NaN or infinity is never best, and a failed trial's last value is not a
            # result: the sweep's own best (tuner best) skips them the same way.
            if record.state == FAILED or record.value is None:
                continue
            if not math.isfinite(record.value) or abs(record.value) == sys.float_info.max:
                continue  # MLflow's SQL stores keep an infinity as the largest float
            signed = self._sign * record.value
            if best is None or signed > best[0]:
                best = (signed, trial_id)
        return {
            "trials": len(self._records),
            "by_state": dict(sorted(states.items())),
            "best_value": self._sign * best[0] if best else None,
            "best_trial": best[1] if best else None,
            "held": held,
            "lost_work_s": lost_work,
            "workers": dict(workers),
            "final": final,
        }
