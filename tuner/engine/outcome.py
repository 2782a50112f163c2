"""How a sweep ended: its result and best trial, or why it has none."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ray import tune

from tuner.engine.checkpoint_links import fetch
from tuner.engine.phases import Phases
from tuner.engine.storage import Storage
from tuner.spec import SweepSpec
from tuner.tracking.models import best_test_metrics, log_best_model
from tuner.tracking.pareto_runs import FrontTrial
from tuner.tracking.registry import register_best
from tuner.tracking.results import as_number
from tuner.tracking.runs import SweepRun
from tuner.tracking.writer import TrackingWriter

logger = logging.getLogger(__name__)


class SweepFailed(RuntimeError):
    """The sweep ran but produced no usable trial (exit status 1)."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C, SIGTERM (or `tuner stop`): Ray Tune stopped the trials and saved the
    experiment state in `experiment_path`, or None: stopped before it saved any.
    `signal_name` says which signal, for the exit status."""

    def __init__(
        self, sweep: str, experiment_path: str | None, signal_name: str = "SIGINT"
    ) -> None:
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
    terminated: str | None = None  # stop_when ended it: why, in words
    artifact_location: str = ""  # the MLflow experiment's: checkpoints and models
    # Where the wall time went; Ray's shutdown is added after this result is made.
    phases: Phases = field(default_factory=Phases)
    # Several objectives: the non-dominated feasible trials, best on the first first.
    front: list[FrontTrial] = field(default_factory=list)
    registered: str | None = None  # the Model Registry's @best, in words
    early_stopping: bool = True  # its scheduler stops trials early (ASHA)


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


@dataclass(frozen=True)
class Exported:
    test_metrics: dict[str, float]
    registered: str | None  # where the Model Registry's @best is, in words


def export_best(
    spec: SweepSpec,
    sweep: SweepRun,
    best: BestTrial,
    checkpoint: tune.Checkpoint,
    phases: Phases | None = None,
) -> Exported:
    """Log the best trial's model to its run and as a logged model; score it once on the
    test split; register it where the sweep file says. Each step is a phase of `phases`."""
    assert best.run_id is not None, "a best trial with a run"
    phases = phases or Phases()
    with tempfile.TemporaryDirectory(prefix="tuner-best-") as directory:
        with phases.phase("  checkpoint fetched"):
            fetch(checkpoint, directory, best.trial_id)  # no link followed out of it
        with phases.phase("  model logged"):
            model_id = log_best_model(
                sweep.client,
                best.run_id,
                spec.trainable,
                directory,
                experiment_id=sweep.experiment_id,
                params=best.params,
            )
        with phases.phase("  test score"):
            test_metrics = best_test_metrics(spec.trainable, directory)
    # Linked to the model once: a second point of a reported metric would add a step to
    # the trial's learning curve.
    sweep.record_test(test_metrics, best.run_id, model_id)
    if model_id is None:
        return Exported(test_metrics, None)
    registered = None
    if spec.register_as is not None:
        registered = register_best(
            sweep.client, spec.register_as, model_id, best.run_id,
            metric=best.metric, mode=spec.mode, value=best.value,
        )  # fmt: skip
    return Exported(test_metrics, registered)


def sweep_note(
    spec: SweepSpec, trials: int, stopped_early: int, failed: int, best: BestTrial
) -> str:
    """The sweep run's description: how it searched, how its trials ended, its best."""
    finished = trials - stopped_early - failed
    return (
        f"{spec.searcher_label} search, {spec.scheduler.kind} scheduler: {trials} trials, "
        f"{finished} finished, {stopped_early} stopped early, {failed} failed. "
        f"Best {best.metric} {best.value:.6g} (trial {best.trial_id})."
    )
