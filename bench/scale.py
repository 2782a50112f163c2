"""Scale: trials that do no work, so what remains is each system's per-trial cost.

    python -m bench.scale                   # 2,000 trials
    python -m bench.scale --trials 10000    # the issue's long sweep (several minutes)
    python -m bench.scale --smoke           # 20 trials

Reports trials per second, overhead per trial in slot-seconds (wall x slots / trials:
the trials themselves take ~0 s), the driver's CPU per trial, and the driver's resident
memory before, after a warm-up sweep, and at 25, 50, 75 and 100% of the trials, so that
memory which stops growing shows as such. Stock Ray Tune with actor reuse runs the same
trials for reference. Each system runs in a fresh process: memory a first system freed
stays in the process and would hide a second system's growth.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    RESULTS,
    SHARED_RAY_ENV,
    SLOTS,
    machine,
    own_cpu_s,
    ray_for,
    rss_mb,
    run_tuner,
    timed,
    write,
)
from bench.stores import null_sweep
from bench.workload import no_op


def tuner_sweep(trials: int, storage: str) -> None:
    run_tuner(null_sweep("bench-scale", trials), storage)


def stock_ray_tune(trials: int, storage: str) -> None:
    from ray import tune

    tune.Tuner(
        no_op,
        param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(num_samples=trials, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=storage, verbose=0),
    ).fit()


# Each system, and where its trials' folders appear under its storage (one per trial
# started): how far a sweep has got, seen from outside it.
SYSTEMS: dict[str, tuple[Callable[[int, str], None], str]] = {
    "tuner": (tuner_sweep, "runs/*/*/trial_*"),
    "ray tune (reuse_actors)": (stock_ray_tune, "*/no_op_*"),
}
WARM_UP_TRIALS = 20
SHARES = (0.25, 0.5, 0.75, 1.0)
SAMPLE_S = 1.0


class Progress(threading.Thread):
    """Samples the driver's memory and the trials started, every SAMPLE_S seconds."""

    def __init__(self, pattern: str) -> None:
        super().__init__(daemon=True)
        self._pattern = pattern
        self._done = threading.Event()
        self.samples: list[tuple[float, int, float]] = []  # (s since start, trials, MB)
        self._t0 = time.perf_counter()

    def run(self) -> None:
        while not self._done.wait(SAMPLE_S):
            self.sample()

    def sample(self) -> None:
        trials = len(glob.glob(self._pattern))
        self.samples.append((time.perf_counter() - self._t0, trials, rss_mb()))

    def finish(self) -> None:
        self._done.set()
        self.join()
        self.sample()

    def at(self, trials: int) -> list[dict[str, float]]:
        """Memory and time when each share of the trials had started (the last at the end)."""
        points = []
        for share in SHARES:
            want = share * trials
            seconds, started, mb = next(
                (s for s in self.samples if s[1] >= want and share < 1), self.samples[-1]
            )
            points.append({"share": share, "trials": started, "s": seconds, "rss_mb": mb})
        return points


def measure(name: str, trials: int) -> dict[str, Any]:
    """One system's sweep in this process, after a warm-up sweep (one-time imports, the
    store's schema: not growth per trial)."""
    system, pattern = SYSTEMS[name]
    wall: dict[str, float] = {}
    startup: dict[str, float] = {}
    with ray_for(startup, name), tempfile.TemporaryDirectory(prefix="bench-") as path:
        start = rss_mb()
        system(WARM_UP_TRIALS, f"{path}/warm-up")
        warm = rss_mb()
        progress = Progress(f"{path}/long/{pattern}")
        cpu = own_cpu_s()
        progress.start()
        with timed(wall, name):
            system(trials, f"{path}/long")
        cpu = own_cpu_s() - cpu
        progress.finish()
    return {
        "wall_s": wall[name],
        "ray_startup_s": startup[name],
        "driver_cpu_s": cpu,
        "driver_rss": {
            "start_mb": start,
            "warm_mb": warm,
            "end_mb": progress.samples[-1][2],
            "at": progress.at(trials),
        },
    }


def in_fresh_process(name: str, trials: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as folder:
        out = Path(folder) / "result.json"
        command = [sys.executable, "-m", "bench.scale", "--system", name]
        command += ["--trials", str(trials), "--result", str(out)]
        subprocess.run(command, check=True, cwd=REPO)
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def run(trials: int) -> dict[str, Any]:
    # The test suite's smoke run shares its Ray in this process; a benchmark proper
    # gives each system a fresh driver.
    fresh = not os.environ.get(SHARED_RAY_ENV)
    figures = {
        name: in_fresh_process(name, trials) if fresh else measure(name, trials) for name in SYSTEMS
    }
    return {
        "machine": machine(),
        "trials": trials,
        "slots": SLOTS,
        "fresh_process_per_system": fresh,
        **{
            key: {name: f[key] for name, f in figures.items()}
            for key in next(iter(figures.values()))
        },
    }


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        ("system", "trials/s", "overhead slot-s/trial", "driver CPU ms/trial",
         "driver MB: start", "after warm-up", "at 25%", "50%", "75%", "100%",
         "growth over the trials", "over the second half")
    ]  # fmt: skip
    for name, seconds in result["wall_s"].items():
        memory = result["driver_rss"][name]
        at = {point["share"]: point["rss_mb"] for point in memory.get("at", [])}
        cpu = result.get("driver_cpu_s", {}).get(name)
        rows.append(
            (
                name,
                f"{result['trials'] / seconds:.1f}",
                f"{seconds * result['slots'] / result['trials']:.3f}",
                f"{cpu * 1000 / result['trials']:.1f}" if cpu is not None else "",
                f"{memory['start_mb']:.0f}",
                f"{memory['warm_mb']:.0f}",
                *(f"{at[share]:.0f}" if share in at else "" for share in SHARES),
                f"{memory['end_mb'] - memory['warm_mb']:+.0f}",
                f"{at[1.0] - at[0.5]:+.0f}" if at else "",
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--smoke", action="store_true", help="20 trials")
    parser.add_argument("--out", type=Path, default=RESULTS)
    # Internal: one system in this process, its figures to a JSON file.
    parser.add_argument("--system", choices=sorted(SYSTEMS), help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.trials = 20
    if args.system is not None:
        args.result.write_text(json.dumps(measure(args.system, args.trials)))
        return Path(args.result)
    result = run(args.trials)
    return write("scale-smoke" if args.smoke else "scale", result, table(result), args.out)


if __name__ == "__main__":
    main()
