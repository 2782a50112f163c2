"""A submitted sweep's trials as its MLflow runs record them: counts by state, best so far.

`tuner status` shows these beside the job's state; they come from the tracking store,
not from Ray, so they stay true after the driver or the cluster is gone. A live sweep's
driver keeps them on the sweep's run (tuner.tracking.tally), as it does once more when
the sweep ends: one run to read, however many trials. Only a sweep whose driver died
before that is counted from its trials' runs, every one paged in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Run

from tuner.tracking.runs import child_runs, find_sweep_run, trial_record
from tuner.tracking.tags import (
    TAG_SUBMISSION,
    TAG_TRIAL_ID,
)
from tuner.tracking.tally import RUNNING, TAG_TRIALS, SweepTally

INTERRUPTED = "INTERRUPTED"


@dataclass(frozen=True)
class TrialCounts:
    """A sweep's trials as its MLflow runs record them."""

    total: int
    by_state: dict[str, int]
    metric: str | None
    best_value: float | None
    best_trial: str | None
    # cpu_hours, gpu_hours and (priced) cost_usd of the trials that ended so far
    held: dict[str, float] = field(default_factory=dict)
    # training redone after restarts (a lost worker), summed over the trials' runs
    lost_work_s: float = 0.0
    # multi-worker trials: how many trials ran on each set of workers ("2 workers x 1 CPU")
    workers: dict[str, int] = field(default_factory=dict)

    def workers_line(self) -> str:
        """The trials' workers as `tuner status` prints them; "" for one-process trials."""
        if len(self.workers) == 1:
            return f"each trial {next(iter(self.workers))}"
        return ", ".join(f"{n} trials of {each}" for each, n in sorted(self.workers.items()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "trials": self.total,
            "by_state": self.by_state,
            "metric": self.metric,
            "best_value": self.best_value,
            "best_trial": self.best_trial,
            "held": self.held,
            "lost_work_s": self.lost_work_s,
            "workers": self.workers,
        }


def trial_counts(
    tracking_uri: str, sweep: str, submission_id: str, *, job_ended: bool = False
) -> TrialCounts | None:
    """Counts and best-so-far of the sweep run tagged with `submission_id`; None if none.

    A run still RUNNING after its job ended lost its driver (killed, or its node lost)
    before it could end the run: it counts as `interrupted`, which `tuner resume` finishes.
    """
    client = MlflowClient(tracking_uri)
    found = find_sweep_run(client, sweep, TAG_SUBMISSION, submission_id)
    if found is None:
        return None
    experiment_id, parent = found
    metric = parent.data.tags.get("tuner.metric")
    tally = _tally(parent.data.tags.get(TAG_TRIALS))
    # A live driver's counts are at most a few seconds old; a dead one's may miss its
    # last trials' ends, and it left RUNNING runs that count as interrupted.
    if tally is not None and (tally.get("final") or not job_ended):
        counts = _from_tally(tally, metric)
        if counts is not None:
            return counts
    return counts_from_runs(client, experiment_id, parent, job_ended=job_ended)


def counts_from_runs(
    client: MlflowClient, experiment_id: str, parent: Run, *, job_ended: bool
) -> TrialCounts:
    """The counts from every trial's run, paged in: what the driver's tally stands for,
    counted by the same rules (a run still RUNNING after its job ended: interrupted)."""
    metric = parent.data.tags.get("tuner.metric")
    tally = SweepTally(metric or "", parent.data.tags.get("tuner.mode", "max"))
    for run in child_runs(client, experiment_id, parent.info.run_id):
        record = trial_record(run, metric)
        if record.state == RUNNING and job_ended:
            record.state = INTERRUPTED.lower()
        tally.seed(run.data.tags.get(TAG_TRIAL_ID, run.info.run_id), record)
    return _counts(tally.summary(), metric)


def _tally(tag: str | None) -> dict[str, Any] | None:
    try:
        tally = json.loads(tag) if tag else None
    except ValueError:  # a tag someone edited: count the runs instead
        return None
    return tally if isinstance(tally, dict) else None


def _from_tally(tally: dict[str, Any], metric: str | None) -> TrialCounts | None:
    try:
        return _counts(tally, metric)
    except (KeyError, TypeError, ValueError, AttributeError):  # an edited tag
        return None


def _counts(summary: dict[str, Any], metric: str | None) -> TrialCounts:
    """`SweepTally.summary()`'s counts, as written to the sweep's run or just made."""
    return TrialCounts(
        total=int(summary["trials"]),
        by_state={str(state): int(n) for state, n in summary["by_state"].items()},
        metric=metric,
        best_value=summary["best_value"],
        best_trial=summary["best_trial"],
        held={str(key): float(hours) for key, hours in summary["held"].items()},
        lost_work_s=float(summary["lost_work_s"]),
        workers={str(each): int(n) for each, n in summary["workers"].items()},
    )
