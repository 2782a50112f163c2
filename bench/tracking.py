"""Tracking cost: tuner with its MLflow tracking on and off; Ray's MLflowLoggerCallback
for reference. The overhead benchmark's workload (N configurations x E epochs, 2 slots).

    python -m bench.tracking               # N=24, E=10, 3 rounds
    python -m bench.tracking --smoke       # N=4, E=2, 1 round

"Off" is the same Tuner that `tuner run` builds (bench has no switch of its own in the
product: tracking is what tuner is for), without the MLflow callback, the parent run
and the terminal table. Each system runs on a fresh Ray; the systems take turns, round
after round, and the median wall time counts, so a slow moment of the machine does not
land on one system only. Every tracked system writes to a SQLite store created
beforehand (its one-time creation is the overhead benchmark's business).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ray import tune

from bench.common import RESULTS, machine, ray_for, run_tuner, timed, write
from bench.overhead import create_tracking_store, overhead_sweep
from bench.workload import learning_rates, ray_trainable, run_epochs


def tuner_untracked(configs: list[dict[str, Any]], folder: str) -> None:
    from tuner.engine.experiments import Experiment
    from tuner.engine.session import quiet_driver_output
    from tuner.engine.storage import resolve_storage
    from tuner.engine.tuner_factory import build_tuner
    from tuner.search.early_stops import EarlyStops
    from tuner.spec import parse_spec

    quiet_driver_output()
    spec = parse_spec(overhead_sweep(configs))
    experiment = Experiment.new(resolve_storage(f"{folder}/runs"), spec.name)
    build_tuner(
        spec, experiment, [], EarlyStops.shared(experiment.uri), withheld={}, on_cluster=False
    ).fit()


def ray_tune(configs: list[dict[str, Any]], folder: str, *, mlflow: bool) -> None:
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    callbacks: list[tune.Callback] = []
    if mlflow:
        callbacks.append(
            MLflowLoggerCallback(
                tracking_uri=f"sqlite:///{folder}/mlflow.db",
                experiment_name="bench-tracking",
                save_artifact=False,
            )
        )
    tune.Tuner(
        ray_trainable,
        param_space={**configs[0], "lr": tune.grid_search([c["lr"] for c in configs])},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(storage_path=f"{folder}/runs", verbose=0, callbacks=callbacks),
    ).fit()


def run(trials: int, epochs: int, rounds: int) -> dict[str, Any]:
    configs = [{"lr": lr, "epochs": epochs, "hidden": 128} for lr in learning_rates(trials)]
    run_epochs(configs[0], lambda epoch, acc: None)  # warm the data cache
    systems: dict[str, Callable[[str], object]] = {
        "tuner, MLflow on": lambda folder: run_tuner(overhead_sweep(configs), folder),
        "tuner, MLflow off": lambda folder: tuner_untracked(configs, folder),
        "ray tune + MLflowLoggerCallback": lambda folder: ray_tune(configs, folder, mlflow=True),
        "ray tune, no tracking": lambda folder: ray_tune(configs, folder, mlflow=False),
    }
    walls: dict[str, list[float]] = {name: [] for name in systems}
    for _ in range(rounds):
        for name, system in systems.items():
            with ray_for({}, name), tempfile.TemporaryDirectory(prefix="bench-") as folder:
                create_tracking_store(folder)
                times: dict[str, float] = {}
                with timed(times, name):
                    system(folder)
                walls[name].append(times[name])
    median = {name: statistics.median(values) for name, values in walls.items()}
    return {
        "machine": machine(),
        "trials": trials,
        "epochs": epochs,
        "rounds": rounds,
        "wall_s": walls,
        "median_wall_s": median,
        "tuner_tracking_cost": median["tuner, MLflow on"] / median["tuner, MLflow off"] - 1,
        "ray_callback_cost": (
            median["ray tune + MLflowLoggerCallback"] / median["ray tune, no tracking"] - 1
        ),
    }


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [("system", "median wall s", "runs s", "tracking cost")]
    costs = {
        "tuner, MLflow on": result["tuner_tracking_cost"],
        "ray tune + MLflowLoggerCallback": result["ray_callback_cost"],
    }
    for name, median in result["median_wall_s"].items():
        runs = ", ".join(f"{seconds:.1f}" for seconds in result["wall_s"][name])
        cost = f"{costs[name]:+.1%}" if name in costs else ""
        rows.append((name, f"{median:.1f}", runs, cost))
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="4 trials x 2 epochs, 1 round")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.trials, args.epochs, args.rounds = 4, 2, 1
    result = run(args.trials, args.epochs, args.rounds)
    name = "tracking-smoke" if args.smoke else "tracking"
    return write(name, result, table(result), args.out)


if __name__ == "__main__":
    main()
