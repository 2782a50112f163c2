"""How a sweep ended: its result and best trial, or why it has none."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from ray import tune

from tuner.engine.phases import Phases
from tuner.engine.storage import Storage
from tuner.spec import SweepSpec
from tuner.tracking.results import as_number
from tuner.tracking.writer import TrackingWriter

logger = logging.getLogger(__name__)


class SweepFailed(RuntimeError):
    """The sweep ran but produced no usable trial (exit status 1)."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C, SIGTERM (or `tuner stop`): Ray Tune stopped the trials and saved the
    experiment state. `signal_name` says which, for the exit status."""

    def __init__(self, sweep: str, experiment_path: str, signal_name: str = "SIGINT") -> None:
        super().__init__(experiment_path)
        self.sweep = sweep
        self.experiment_path = experiment_path
        self.signal_name = signal_name


@dataclass(frozen=True)
class BestTrial:
    trial_id: str
    params: dict[str, Any]
    metric: str
    value: float
    run_id: str | None
    checkpoint: str | None


@dataclass(frozen=True)
class SweepResult:
    name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    experiment_path: str
    num_trials: int
    num_stopped_early: int
    num_failed: int
    num_restarted: int  # trials that lost their worker and resumed from a checkpoint
    best: BestTrial
    test_metrics: dict[str, float] = field(default_factory=dict)  # best model, test split
    cost: dict[str, float] = field(default_factory=dict)  # cpu_hours, gpu_hours, cost_usd
    stopped_by: str | None = None  # the budget limit that ended the sweep, in words
    artifact_location: str = ""  # the MLflow experiment's: checkpoints and models
    # Where the wall time went; Ray's shutdown is added after this result is made.
    phases: Phases = field(default_factory=Phases)


def best_result(spec: SweepSpec, results: tune.ResultGrid) -> tune.Result | None:
    """The trial with the best last-reported metric among trials that did not fail.

    A trial's score is its final reported value, as ASHA and Optuna see it. A failed
    trial's last value is not a result, and NaN or infinity never wins.
    """
    sign = 1.0 if spec.mode == "max" else -1.0
    best: tune.Result | None = None
    best_score = -math.inf
    for index in range(len(results)):
        result = results[index]
        # numpy scalars and 0-d tensors are numbers too: the user reported them as such.
        value = as_number((result.metrics or {}).get(spec.metric))
        if result.error is not None or value is None:
            continue
        if math.isfinite(value) and sign * value > best_score:
            best, best_score = result, sign * value
    return best


def best_trial(
    spec: SweepSpec, best: tune.Result, writer: TrackingWriter, storage: Storage
) -> BestTrial:
    """What the user is told about the trial best_result chose (its metric is a number)."""
    metrics = best.metrics or {}
    config = best.config or {}
    trial_id = str(metrics["trial_id"])
    value = as_number(metrics[spec.metric])
    assert value is not None, "best_result chose a trial with a numeric metric"
    return BestTrial(
        trial_id=trial_id,
        params={name: config[name] for name in spec.params if name in config},
        metric=spec.metric,
        value=value,
        run_id=writer.run_id(trial_id),
        checkpoint=storage.uri_of(best.checkpoint.path) if best.checkpoint else None,
    )
