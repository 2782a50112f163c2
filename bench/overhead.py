"""Overhead: N fixed configurations x E epochs on 2 slots, tuner against stock engines.

    python -m bench.overhead                # N=24, E=10 (a few minutes on 2 cores)
    python -m bench.overhead --smoke        # N=4, E=2: checks that it still works

Every system trains the same configurations for the same epochs (bench.workload), so
wall times differ by each system's own overhead. The ideal is the sum of per-trial
compute, measured in this process, divided by the slots. Each Ray-based system gets a
fresh Ray, whose start-up is reported separately: none inherits another's warm workers.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from ray import tune

from bench.common import RESULTS, SLOTS, machine, ray_for, run_tuner, timed, write
from bench.workload import learning_rates, ray_trainable, run_epochs


def stock_ray_tune(configs: list[dict[str, Any]], storage: str, reuse_actors: bool) -> None:
    tune.Tuner(
        ray_trainable,
        param_space={**configs[0], "lr": tune.grid_search([c["lr"] for c in configs])},
        tune_config=tune.TuneConfig(reuse_actors=reuse_actors),
        run_config=tune.RunConfig(storage_path=storage, verbose=0),
    ).fit()


def create_tracking_store(path: str) -> float:
    """A user's first sweep in a folder creates its SQLite store (schema migrations);
    every later sweep opens it. Created here, timed apart, like Ray's start-up."""
    from mlflow import MlflowClient

    started = time.perf_counter()
    MlflowClient(f"sqlite:///{path}/mlflow.db").search_experiments()
    return time.perf_counter() - started


def overhead_sweep(configs: list[dict[str, Any]]) -> dict[str, Any]:
    """The configurations as a tuner sweep file: a grid over the learning rates."""
    return {
        "name": "bench-overhead",
        "trainable": "bench.workload:ray_trainable",
        "metric": "val_accuracy",
        "mode": "max",
        "searcher": {"kind": "grid"},
        "max_concurrent_trials": SLOTS,
        "params": {"lr": {"type": "grid", "values": [c["lr"] for c in configs]}},
        "config": {k: v for k, v in configs[0].items() if k != "lr"},
    }


def tuner_sweep(configs: list[dict[str, Any]], storage: str) -> None:
    run_tuner(overhead_sweep(configs), storage)


def plain_optuna(configs: list[dict[str, Any]], workers: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for config in configs:
        study.enqueue_trial({"lr": config["lr"]})
    base = {k: v for k, v in configs[0].items() if k != "lr"}

    def objective(trial: optuna.Trial) -> float:
        config = {**base, "lr": trial.suggest_float("lr", 1e-5, 1.0, log=True)}
        return run_epochs(config, lambda epoch, acc: trial.report(acc, epoch))

    study.optimize(objective, n_trials=len(configs), n_jobs=workers)


def run(trials: int, epochs: int, hidden: int) -> dict[str, Any]:
    configs = [{"lr": lr, "epochs": epochs, "hidden": hidden} for lr in learning_rates(trials)]
    run_epochs(configs[0], lambda epoch, acc: None)  # warm-up: data load, torch's first calls
    compute: list[float] = []
    for config in configs:
        started = time.perf_counter()
        run_epochs(config, lambda epoch, acc: None)
        compute.append(time.perf_counter() - started)
    wall: dict[str, float] = {}
    startup: dict[str, float] = {}
    with timed(wall, "optuna (serial)"):
        plain_optuna(configs, workers=1)
    with timed(wall, "optuna (2 workers)"):
        plain_optuna(configs, workers=SLOTS)
    ray_systems: dict[str, Callable[[str], None]] = {
        "ray tune (defaults)": lambda path: stock_ray_tune(configs, path, reuse_actors=False),
        "ray tune (reuse_actors)": lambda path: stock_ray_tune(configs, path, reuse_actors=True),
        "tuner": lambda path: tuner_sweep(configs, path),
    }
    store_s = 0.0
    for name, system in ray_systems.items():
        with ray_for(startup, name), tempfile.TemporaryDirectory(prefix="bench-") as path:
            if name == "tuner":
                store_s = create_tracking_store(path)
            with timed(wall, name):
                system(path)
    return {
        "machine": machine(),
        "trials": trials,
        "epochs": epochs,
        "slots": SLOTS,
        "ideal_s": sum(compute) / SLOTS,
        "per_trial_compute_s": compute,
        "wall_s": wall,
        "ray_startup_s": startup,
        "tracking_store_creation_s": store_s,
    }


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    ideal, wall = result["ideal_s"], result["wall_s"]
    rows: list[tuple[str, ...]] = [("system", "wall s", "x ideal", "tuner / system", "ray start s")]
    rows.append(("ideal (compute / slots)", f"{ideal:.1f}", "1.00", "", ""))
    for name, seconds in wall.items():
        rows.append(
            (
                name,
                f"{seconds:.1f}",
                f"{seconds / ideal:.2f}",
                f"{wall['tuner'] / seconds:.2f}",
                f"{result['ray_startup_s'][name]:.1f}" if name in result["ray_startup_s"] else "",
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--smoke", action="store_true", help="4 trials x 2 epochs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.trials, args.epochs = 4, 2
    result = run(args.trials, args.epochs, args.hidden)
    name = "overhead-smoke" if args.smoke else "overhead"
    if not args.smoke and (args.trials, args.epochs) != (24, 10):
        name = f"overhead-n{args.trials}-e{args.epochs}"
    return write(name, result, table(result), args.out)


if __name__ == "__main__":
    main()
