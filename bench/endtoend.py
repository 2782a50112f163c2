"""Whole commands, as a user times them: `tuner run` on a sweep file against the plain
Optuna script a user would write to run the same trainer epochs one after another, and
the stock Ray Tune script that runs them 2 at a time.

    python -m bench.endtoend                    # 12 configurations x 100 and x 10 epochs
    python -m bench.endtoend --epochs 100 --rounds 5
    python -m bench.endtoend --smoke            # 2 x 2, one round: checks that it works

Each system is a fresh process and its wall time is the command's whole (interpreter,
imports, Ray's start and shutdown, MLflow's writes, the summary). All train the built-in
classifier on digits through the same `run_epochs`: the same configurations (a grid of
learning rates), every epoch, no early stopping. tuner runs with 2 slots, MLflow on, the
default checkpoint policy, in a folder whose SQLite store a first, untimed sweep created
(creating it, once per folder, is reported apart); the scripts keep no checkpoints and
track nothing. The systems take turns, round by round; medians.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from bench import checkpoints, plain_optuna, plain_raytune
from bench.common import RESULTS, SLOTS, machine, python_path, write
from bench.workload import learning_rates

# The phases `tuner run --profile` prints that the table quotes, as seconds since the
# process started.
PHASES = ("first result", "last trial ended", "summary printed")

# Where tuner would track and store from the environment (an MLflow set elsewhere in
# this process exports its URI): each system keeps to its own folder instead.
SCRUBBED_ENV = ("MLFLOW_TRACKING_URI", "TUNER_STORAGE", "RAY_ADDRESS")


def sweep_file(lrs: list[float], epochs: int) -> dict[str, Any]:
    """bench.checkpoints' sweep with its default checkpoint policy, named apart."""
    return {**checkpoints.sweep(lrs, epochs, {}), "name": "bench-endtoend"}


def timed_command(command: list[str], folder: Path) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env["PYTHONPATH"] = python_path()
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command[:4]} exited {done.returncode}: {done.stderr[-2000:]}")
    return took, done.stdout + done.stderr  # --profile's table is on stderr


def phases_from(profile: str) -> dict[str, float]:
    """The `at s` column of `--profile`'s table for the phases the table quotes."""
    found = {}
    for phase in PHASES:
        line = re.search(rf"^{re.escape(phase)}\s+([0-9.]+)", profile, re.MULTILINE)
        if line:
            found[phase] = float(line.group(1))
    return found


def run(trials: int, epochs: int, rounds: int) -> dict[str, Any]:
    lrs = learning_rates(trials)
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as scratch:
        folder = Path(scratch)
        (folder / "sweep.yaml").write_text(yaml.safe_dump(sweep_file(lrs, epochs)))
        (folder / "first.yaml").write_text(yaml.safe_dump(sweep_file(lrs[:1], 1)))
        grid = ",".join(map(str, lrs))
        plain = [sys.executable, plain_optuna.__file__, str(epochs), grid]
        ray_tune = [sys.executable, plain_raytune.__file__, str(epochs), grid, str(folder / "rt")]
        tuner = [sys.executable, "-m", "tuner.cli", "run", "sweep.yaml", "--profile"]
        store_created, _ = timed_command([*tuner[:4], "first.yaml"], folder)
        wall: dict[str, list[float]] = {
            "optuna (serial script)": [],
            "ray tune (script)": [],
            "tuner run": [],
        }
        phases: list[dict[str, float]] = []
        for _ in range(rounds):
            wall["optuna (serial script)"].append(timed_command(plain, folder)[0])
            wall["ray tune (script)"].append(timed_command(ray_tune, folder)[0])
            took, printed = timed_command(tuner, folder)
            wall["tuner run"].append(took)
            phases.append(phases_from(printed))
    return {
        "machine": machine(),
        "trials": trials,
        "epochs": epochs,
        "slots": SLOTS,
        "rounds": rounds,
        "wall_s": wall,
        "tuner_phases_at_s": phases,
        "first_sweep_in_folder_s": store_created,
        "loadavg_after": list(os.getloadavg()),
    }


def table(results: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        (
            "workload",
            "optuna script s",
            "ray tune script s",
            "tuner run s",
            "tuner / optuna",
            "tuner / ray tune",
            "first result at s",
        )
    ]
    for result in results:
        walls = {system: statistics.median(w) for system, w in result["wall_s"].items()}
        plain, tuner = walls["optuna (serial script)"], walls["tuner run"]
        # Results written before the Ray Tune script was timed have no such column.
        ray_tune = walls.get("ray tune (script)")
        first = [p["first result"] for p in result["tuner_phases_at_s"] if "first result" in p]
        rows.append(
            (
                f"{result['trials']} x {result['epochs']} epochs",
                f"{plain:.1f}",
                f"{ray_tune:.1f}" if ray_tune else "",
                f"{tuner:.1f}",
                f"{tuner / plain:.2f}",
                f"{tuner / ray_tune:.2f}" if ray_tune else "",
                f"{statistics.median(first):.1f}" if first else "",
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, nargs="+", default=[100, 10])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="2 x 2 epochs, one round")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.trials, args.epochs, args.rounds = 2, [2], 1
    results = [run(args.trials, epochs, args.rounds) for epochs in args.epochs]
    name = "endtoend-smoke" if args.smoke else f"endtoend-n{args.trials}"
    return write(name, {"workloads": results}, table(results), args.out)


if __name__ == "__main__":
    main()
