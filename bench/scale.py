"""Scale: trials that do no work, so what remains is each system's per-trial cost.

    python -m bench.scale                   # 2,000 trials
    python -m bench.scale --smoke           # 20 trials

Reports trials per second, overhead per trial in slot-seconds (wall x slots / trials:
the trials themselves take ~0 s) and the driver's resident memory before and after.
Stock Ray Tune with actor reuse runs the same trials for reference.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ray import tune

from bench.common import RESULTS, SLOTS, machine, ray_for, rss_mb, run_tuner, timed, write
from bench.stores import null_sweep
from bench.workload import no_op


def tuner_sweep(trials: int, storage: str) -> None:
    run_tuner(null_sweep("bench-scale", trials), storage)


def stock_ray_tune(trials: int, storage: str) -> None:
    tune.Tuner(
        no_op,
        param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(num_samples=trials, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=storage, verbose=0),
    ).fit()


WARM_UP_TRIALS = 20


def run(trials: int) -> dict[str, Any]:
    systems = {"tuner": tuner_sweep, "ray tune (reuse_actors)": stock_ray_tune}
    wall: dict[str, float] = {}
    startup: dict[str, float] = {}
    memory: dict[str, dict[str, float]] = {}
    for name, system in systems.items():
        with ray_for(startup, name):
            start = rss_mb()
            with tempfile.TemporaryDirectory(prefix="bench-") as path:
                # A small sweep first: one-time imports (MLflow, SQLAlchemy...) are not
                # growth per trial, and must not be counted as such.
                system(WARM_UP_TRIALS, f"{path}/warm-up")
                warm = rss_mb()
                with timed(wall, name):
                    system(trials, path)
            memory[name] = {"start_mb": start, "warm_mb": warm, "end_mb": rss_mb()}
    return {
        "machine": machine(),
        "trials": trials,
        "slots": SLOTS,
        "wall_s": wall,
        "ray_startup_s": startup,
        "driver_rss": memory,
    }


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        ("system", "trials/s", "overhead slot-s/trial", "driver MB: start", "after warm-up",
         "end", "growth over the trials")
    ]  # fmt: skip
    for name, seconds in result["wall_s"].items():
        memory = result["driver_rss"][name]
        rows.append(
            (
                name,
                f"{result['trials'] / seconds:.1f}",
                f"{seconds * result['slots'] / result['trials']:.3f}",
                f"{memory['start_mb']:.0f}",
                f"{memory['warm_mb']:.0f}",
                f"{memory['end_mb']:.0f}",
                f"{memory['end_mb'] - memory['warm_mb']:+.0f}",
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--smoke", action="store_true", help="20 trials")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.trials = 20
    result = run(args.trials)
    return write("scale-smoke" if args.smoke else "scale", result, table(result), args.out)


if __name__ == "__main__":
    main()
