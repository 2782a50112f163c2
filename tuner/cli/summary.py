"""The summary a finished `tuner run` or `tuner resume` prints: trials, best, cost."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING

from rich.console import Console

from tuner.cli.common import held_line
from tuner.spec.errors import printable

if TYPE_CHECKING:
    from tuner.engine.outcome import SweepResult
    from tuner.tracking.pareto_runs import FrontTrial


def front_lines(front: list[FrontTrial]) -> list[str]:
    """One line per trial of a Pareto front: its objectives, then its params, escaped as
    `param_lines` says. A front of trials ASHA stopped (no trial trained to its end)
    says so on each: their values are of a few epochs, not of a trained model."""
    return [
        printable(
            f"  trial {trial.trial_id}: "
            + " ".join(f"{metric}={value:.6g}" for metric, value in trial.values.items())
            + "  "
            + " ".join(f"{name}={value}" for name, value in trial.params.items())
            + ("  (stopped early by ASHA)" if trial.stopped_early else "")
        )
        for trial in front
    ]


def param_lines(params: Mapping[str, object]) -> list[str]:
    """`  name = value`, one a param. A value is the user's string (a choice): its escape
    sequences shown as text, so that printing it cannot retitle or clear the terminal."""
    return [printable(f"  {name} = {value}") for name, value in params.items()]


def print_summary(result: SweepResult) -> None:
    _summarize(result)
    result.phases.mark("summary printed")


def _summarize(result: SweepResult) -> None:
    out = Console(highlight=False, soft_wrap=True)
    best = result.best
    finished = result.num_trials - result.num_stopped_early - result.num_failed
    # Only ASHA stops trials early: "0 stopped early" of a fifo or PBT sweep said nothing.
    stopped = f"{result.num_stopped_early} stopped early by ASHA, " if result.early_stopping else ""
    out.print(
        f"\n{result.num_trials} trials: {finished} finished, {stopped}{result.num_failed} failed"
        + (
            f"; {result.num_restarted} restarted from a checkpoint after losing a worker"
            if result.num_restarted
            else ""
        )
    )
    if result.front:
        out.print(f"Pareto front: {len(result.front)} trials", markup=False)
        for line in front_lines(result.front):
            out.print(line, markup=False)
        what = f"best on the first objective, trial {best.trial_id}"
    else:
        what = f"best trial {best.trial_id}"
    out.print(f"{what}: {best.metric} = {best.value:.6g}", markup=False)
    for line in param_lines(best.params):
        out.print(line, markup=False)
    out.print(
        f"MLflow: experiment '{result.name}', sweep run {result.parent_run_id}, "
        f"best trial run {best.run_id}",
        markup=False,
    )
    browse = browse_line(result.tracking_uri, result.experiment_id, result.parent_run_id)
    out.print(f"  browse: {browse}", markup=False)
    if result.artifact_location:
        out.print(f"  artifacts: {result.artifact_location}", markup=False)
    # A trainable need not checkpoint; "None" read like something went missing.
    out.print(f"checkpoint: {best.checkpoint or 'none (the trainable saved none)'}", markup=False)
    if result.test_metrics:
        scores = ", ".join(f"{k} = {v:.6g}" for k, v in result.test_metrics.items())
        out.print(f"best model on the test split (never seen by the search): {scores}")
    if result.registered:
        out.print(result.registered, markup=False)
    if result.cost:
        out.print(f"held: {held_line(result.cost)}", markup=False)
    if result.stopped_by:
        out.print(f"stopped by its budget: {result.stopped_by}", markup=False)
    if result.terminated:
        out.print(f"stopped by stop_when: {result.terminated}", markup=False)


def browse_line(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """How to see the sweep: the command that opens a local store, or the server's page."""
    if tracking_uri.startswith("sqlite"):
        # Quoted: a path with a space, pasted into a shell, was two arguments.
        return f"mlflow ui --backend-store-uri {shlex.quote(tracking_uri)}"
    return f"{tracking_uri}/#/experiments/{experiment_id}/runs/{run_id}"
