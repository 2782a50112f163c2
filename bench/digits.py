"""Real training: best validation accuracy against wall time on digits.

    python -m bench.digits              # 5 seeds of the digits knobs sweep (about 7 min)
    python -m bench.digits --smoke      # 1 seed, 3 trials of 2 epochs: checks that it works

The sweep is search_spaces/digits_knobs_tpe_asha.yaml: the built-in trainer's knobs on
digits (MLP or CNN, optimizer, schedule, regularization, initialization, augmentation),
24 trials of up to 15 epochs, 2 slots. Every system searches that space with the same
trainer code for the same number of trials:
- tuner TPE + ASHA: the sweep file as written, through tuner's runner, tracked in MLflow
  with a checkpoint every epoch (what a user gets);
- tuner random, no early stopping: the same file with `searcher: random` and
  `scheduler: fifo`;
- plain Optuna TPE + SuccessiveHalvingPruner (minimum resource 1 and reduction factor 3,
  as the file's ASHA), in one process, one trial at a time, training with tuner's own
  epoch loop (tuner.trainer.loop.run_epochs) and keeping no checkpoints.

Wall time counts from the sweep's start; a tuner sweep's Ray start-up is reported
apart. An epoch's validation accuracy counts from when the driver had it: for Optuna,
the clock; for tuner, MLflow's metric timestamp. Ray stamps results with the whole
second, so tuner's times are taken at the end of that second: up to 1 s late, never
early. The sampler seed changes between seeds; the trainer's own seed does not.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from mlflow import MlflowClient

from bench.common import RESULTS, machine, ray_for, run_tuner, write
from bench.overhead import create_tracking_store
from tuner import load_spec
from tuner.search.distributions import optuna_space
from tuner.spec import OptunaSearcher, SweepSpec
from tuner.tracking.runs import child_runs

SWEEP_FILE = Path(__file__).resolve().parent.parent / "search_spaces/digits_knobs_tpe_asha.yaml"
CHECKPOINTS_S = (2.5, 5.0, 10.0, 20.0)  # when the table reads each system's best so far
TARGETS = (0.97, 0.99)  # validation accuracies: how long each system takes to reach them

# (seconds since the sweep started, validation accuracy) for every epoch of every trial
Events = list[tuple[float, float]]


def digits_sweep(seed: int, smoke: bool) -> SweepSpec:
    spec = load_spec(SWEEP_FILE)
    assert isinstance(spec.searcher, OptunaSearcher), "the digits sweep searches with Optuna"
    searcher = spec.searcher.model_copy(update={"seed": seed})
    spec = spec.model_copy(update={"searcher": searcher})
    if smoke:
        scheduler = spec.scheduler.model_copy(update={"max_t": 2})
        spec = spec.model_copy(
            update={
                "num_samples": 3,
                "scheduler": scheduler,
                "config": {**spec.config, "epochs": 2},
            }
        )
    return spec


def without_early_stopping(spec: SweepSpec) -> dict[str, Any]:
    """The same sweep with random search and every trial trained to the end."""
    raw = spec.model_dump(mode="json", exclude_none=True)
    raw["searcher"] = {"kind": "random", "seed": raw["searcher"]["seed"]}
    raw["scheduler"] = {"kind": "fifo"}
    return raw


def tuner_events(sweep: dict[str, Any], folder: str, startup: list[float]) -> tuple[Events, float]:
    """Run a sweep through tuner on a fresh Ray; every epoch's accuracy from MLflow."""
    create_tracking_store(folder)  # once per working directory: not the sweep's cost
    times: dict[str, float] = {}
    with ray_for(times, "ray"):
        started = time.time()
        result = run_tuner(sweep, folder)
        wall = time.time() - started
    startup.append(times["ray"])
    client = MlflowClient(result.tracking_uri)
    events = [
        (point.timestamp / 1000 + 1 - started, point.value)
        for run in child_runs(client, result.experiment_id, result.parent_run_id)
        for point in client.get_metric_history(run.info.run_id, sweep["metric"])
    ]
    return sorted(events), wall


def optuna_events(spec: SweepSpec, seed: int) -> tuple[Events, float]:
    """Plain Optuna, ask and tell, over the same space, trials and training code."""
    from tuner.trainer.loop import run_epochs

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
    )
    space = optuna_space(spec)
    events: Events = []
    started = time.time()
    for _ in range(spec.num_samples):
        trial = study.ask(space)
        accuracy = math.nan
        state = optuna.trial.TrialState.COMPLETE
        for epoch in run_epochs({**spec.config, **trial.params}, "classification", None):
            accuracy = epoch.metrics[spec.metric]
            events.append((time.time() - started, accuracy))
            trial.report(accuracy, epoch.metrics["epoch"])
            if trial.should_prune():
                state = optuna.trial.TrialState.PRUNED
                break
        study.tell(trial, accuracy if state == optuna.trial.TrialState.COMPLETE else None, state)
    return events, time.time() - started


def best_by(events: Events, seconds: float) -> float:
    seen = [accuracy for at, accuracy in events if at <= seconds]
    return max(seen, default=math.nan)


def time_to(events: Events, accuracy: float) -> float:
    return next((at for at, value in events if value >= accuracy), math.inf)


def run(seeds: int, smoke: bool) -> dict[str, Any]:
    systems: dict[str, Callable[[int, str, list[float]], tuple[Events, float]]] = {
        "tuner TPE + ASHA": lambda seed, folder, startup: tuner_events(
            digits_sweep(seed, smoke).model_dump(mode="json", exclude_none=True), folder, startup
        ),
        "tuner random, no early stopping": lambda seed, folder, startup: tuner_events(
            without_early_stopping(digits_sweep(seed, smoke)), folder, startup
        ),
        "optuna TPE + successive halving": lambda seed, folder, startup: optuna_events(
            digits_sweep(seed, smoke), seed
        ),
    }
    per_system: dict[str, dict[str, Any]] = {}
    for seed in range(seeds):
        # Systems take turns within a seed, so a slow spell of the machine hits all of them.
        for name, system in systems.items():
            figures = per_system.setdefault(name, {"events": [], "wall_s": [], "ray_start_s": []})
            with tempfile.TemporaryDirectory(prefix="bench-digits-") as folder:
                events, wall = system(seed, folder, figures["ray_start_s"])
            figures["events"].append(events)
            figures["wall_s"].append(wall)
    for figures in per_system.values():
        runs: list[Events] = figures["events"]
        figures["best_by_s"] = {
            str(at): statistics.median(best_by(events, at) for events in runs)
            for at in CHECKPOINTS_S
        }
        figures["final_best"] = statistics.median(best_by(events, math.inf) for events in runs)
        figures["median_wall_s"] = statistics.median(figures["wall_s"])
        figures["first_result_s"] = statistics.median(events[0][0] for events in runs)
        figures["s_to_target"] = {
            str(target): statistics.median(time_to(events, target) for events in runs)
            for target in TARGETS
        }
        figures["epochs_trained"] = [len(events) for events in runs]
    spec = digits_sweep(0, smoke)
    return {
        "machine": machine(),
        "sweep_file": SWEEP_FILE.name,
        "seeds": seeds,
        "trials": spec.num_samples,
        "max_epochs": spec.config["epochs"],
        "targets": TARGETS,
        "systems": per_system,
    }


def _accuracy(value: float) -> str:
    return "no result yet" if math.isnan(value) else f"{value:.3f}"


def _seconds(value: float) -> str:
    return "not reached" if math.isinf(value) else f"{value:.1f}"


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    header = (
        "system",
        "first result s",
        *(f"best val acc by {at:g} s" for at in CHECKPOINTS_S),
        "final best",
        "wall s",
        *(f"s to {target:.2f}" for target in result["targets"]),
        "epochs trained",
    )
    rows: list[tuple[str, ...]] = [header]
    for name, figures in result["systems"].items():
        rows.append(
            (
                name,
                f"{figures['first_result_s']:.1f}",
                *(_accuracy(figures["best_by_s"][str(at)]) for at in CHECKPOINTS_S),
                f"{figures['final_best']:.3f}",
                f"{figures['median_wall_s']:.1f}",
                *(_seconds(figures["s_to_target"][str(t)]) for t in result["targets"]),
                f"{statistics.median(figures['epochs_trained']):.0f}",
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="1 seed, 3 trials of 2 epochs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.seeds = 1
    result = run(args.seeds, args.smoke)
    return write("digits-smoke" if args.smoke else "digits", result, table(result), args.out)


if __name__ == "__main__":
    main()
