"""Checkpoint cost: the built-in classifier's sweep with a checkpoint after every epoch (what
tuner did before its checkpoint policy) against the default policy, and plain Optuna
running the same trainer epochs in one process, serially, keeping no checkpoints.

    python -m bench.checkpoints            # 12 configurations x 100 epochs, 2 slots
    python -m bench.checkpoints --s3       # the same, and each tuner system again on s3://
    python -m bench.checkpoints --smoke    # 2 x 3: checks that it still works

Every system trains the same configurations (a grid of learning rates) for every epoch:
no early stopping. tuner runs in this process through `run_sweep`, MLflow on (a SQLite
store inside a fresh folder), on a fresh embedded Ray whose start-up is timed apart.
With --s3, each tuner system runs once more with its storage on `s3://`: moto's S3
server in its own process on loopback, as a multi-node cluster keeps its checkpoints
(real S3 answers in tens of milliseconds a request too).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import RESULTS, SLOTS, machine, ray_for, run_tuner, timed, write
from bench.plain_optuna import optimize
from bench.servers import running_s3
from bench.workload import learning_rates

POLICIES: dict[str, dict[str, Any]] = {
    "tuner, checkpoint every epoch": {"every_epochs": 1, "min_interval_s": 0},
    "tuner, default policy": {},  # every_epochs 1, min_interval_s 30
}


def sweep(lrs: list[float], epochs: int, checkpoint: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "bench-checkpoints",
        "trainable": "builtin:classifier",
        "metric": "val_accuracy",
        "mode": "max",
        "searcher": {"kind": "grid"},
        "max_concurrent_trials": SLOTS,
        **({"checkpoint": checkpoint} if checkpoint else {}),
        "params": {"lr": {"type": "grid", "values": lrs}},
        "config": {"epochs": epochs},
    }


S3_BUCKET = "bench-sweeps"


def run(trials: int, epochs: int, s3: bool = False) -> dict[str, Any]:
    lrs = learning_rates(trials)
    wall: dict[str, float] = {}
    startup: dict[str, float] = {}
    optimize(lrs[:1], 1)  # warm-up: data load, torch's first calls
    with timed(wall, "optuna (serial), no checkpoints"):
        optimize(lrs, epochs)
    for name, policy in POLICIES.items():
        with (
            ray_for(startup, name),
            tempfile.TemporaryDirectory(prefix="bench-") as folder,
            timed(wall, name),
        ):
            run_tuner(sweep(lrs, epochs, policy), folder)
    if s3:
        for number, (name, policy) in enumerate(POLICIES.items()):
            on_s3 = f"{name}, S3 (moto)"
            with (
                running_s3(S3_BUCKET),
                ray_for(startup, on_s3),
                tempfile.TemporaryDirectory(prefix="bench-") as folder,
                timed(wall, on_s3),
            ):
                run_tuner(
                    sweep(lrs, epochs, policy), folder, storage=f"s3://{S3_BUCKET}/policy-{number}"
                )
    every, default = (wall[name] for name in POLICIES)
    return {
        "machine": machine(),
        "trials": trials,
        "epochs": epochs,
        "slots": SLOTS,
        "wall_s": wall,
        "ray_startup_s": startup,
        # What one checkpoint cost the sweep's wall time, spread over 2 slots.
        "saved_per_epoch_ms": 1000 * (every - default) * SLOTS / (trials * epochs),
    }


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    wall = result["wall_s"]
    baseline = wall["optuna (serial), no checkpoints"]
    rows: list[tuple[str, ...]] = [("system", "wall s", "x plain Optuna", "ray start s")]
    for name, seconds in wall.items():
        start = result["ray_startup_s"].get(name)
        rows.append(
            (name, f"{seconds:.1f}", f"{seconds / baseline:.2f}", f"{start:.1f}" if start else "")
        )
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--s3", action="store_true", help="each tuner system on s3:// too")
    parser.add_argument("--smoke", action="store_true", help="2 trials x 3 epochs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.trials, args.epochs = 2, 3
    started = time.perf_counter()
    result = run(args.trials, args.epochs, args.s3)
    result["benchmark_s"] = time.perf_counter() - started
    name = "checkpoints-smoke" if args.smoke else f"checkpoints-n{args.trials}-e{args.epochs}"
    name += "-s3" if args.s3 else ""
    return write(name, result, table(result), args.out)


if __name__ == "__main__":
    main()
