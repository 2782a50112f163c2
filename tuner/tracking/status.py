"""A submitted sweep's trials as its MLflow runs record them: counts by state, best so far.

`tuner status` shows these beside the job's state; they come from the tracking store,
not from Ray, so they stay true after the driver or the cluster is gone. A live sweep's
driver keeps them on the sweep's run (tuner.tracking.tally), as it does once more when
the sweep ends: one run to read, however many trials. Only a sweep whose driver died
before that is counted from its trials' runs, every one paged in.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Run

from tuner.tracking.cost import COST_USD, CPU_HOURS, GPU_HOURS
from tuner.tracking.runs import child_runs, find_sweep_run
from tuner.tracking.tags import (
    TAG_LOST_WORK,
    TAG_STOPPED_EARLY,
    TAG_SUBMISSION,
    TAG_TRIAL_ID,
    TAG_WORKERS,
)
from tuner.tracking.tally import TAG_TRIALS

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
    """The counts from every trial's run, paged in: what the driver's tally stands for."""
    metric = parent.data.tags.get("tuner.metric")
    sign = -1.0 if parent.data.tags.get("tuner.mode") == "min" else 1.0
    children = child_runs(client, experiment_id, parent.info.run_id)
    states: Counter[str] = Counter()
    workers: Counter[str] = Counter()
    held: dict[str, float] = {}
    lost_work = 0.0
    best: tuple[float, str] | None = None
    for run in children:
        tags = run.data.tags
        status = run.info.status
        if status == "KILLED" and TAG_STOPPED_EARLY in tags:
            status = "STOPPED_EARLY"
        elif status == "RUNNING" and job_ended:
            status = INTERRUPTED
        states[status.lower()] += 1
        if TAG_WORKERS in tags:
            workers[tags[TAG_WORKERS]] += 1
        for key in (CPU_HOURS, GPU_HOURS, COST_USD):
            if key in run.data.metrics:
                held[key] = held.get(key, 0.0) + run.data.metrics[key]
        lost_work += _seconds(tags.get(TAG_LOST_WORK))
        value = run.data.metrics.get(metric) if metric else None
        if value is not None and value == value and (best is None or sign * value > best[0]):
            best = (sign * value, tags.get(TAG_TRIAL_ID, run.info.run_id))
    return TrialCounts(
        total=len(children),
        by_state=dict(sorted(states.items())),
        metric=metric,
        best_value=sign * best[0] if best else None,
        best_trial=best[1] if best else None,
        held=held,
        lost_work_s=lost_work,
        workers=dict(workers),
    )


def _tally(tag: str | None) -> dict[str, Any] | None:
    try:
        tally = json.loads(tag) if tag else None
    except ValueError:  # a tag someone edited: count the runs instead
        return None
    return tally if isinstance(tally, dict) else None


def _from_tally(tally: dict[str, Any], metric: str | None) -> TrialCounts | None:
    try:
        return TrialCounts(
            total=int(tally["trials"]),
            by_state={str(state): int(n) for state, n in tally["by_state"].items()},
            metric=metric,
            best_value=tally["best_value"],
            best_trial=tally["best_trial"],
            held={str(key): float(hours) for key, hours in tally["held"].items()},
            lost_work_s=float(tally["lost_work_s"]),
            workers={str(each): int(n) for each, n in tally["workers"].items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _seconds(tag: str | None) -> float:
    try:
        return float(tag) if tag else 0.0
    except ValueError:  # a tag someone edited: it counts for nothing
        return 0.0
