"""GPU sweeps: where a sweep on a GPU spends its time, and how well trials packed on one
GPU share it. The GPU issue's workload: 8 trials x 4 epochs of `builtin:classifier`, an
MLP 512 x 4 on synthetic data (50,000 x 256, 10 classes), batch 128, fifo, 2 trials at a
time per GPU share unless packed.

    python -m bench.gpu                 # on a machine with a CUDA GPU
    python -m bench.gpu --smoke         # anywhere: 2 tiny trials on the CPU

Figures: for each `gpu` share (1, 0.5, 0.25, 0.125) the sweep's wall time, trials per
hour and the GPU's mean utilization while the trials ran (NVML, sampled every 0.2 s,
where `nvidia-ml-py` is installed); and, from the sweep's phase clock, the time from the
start to the first trial's first result and from the last trial's end to the summary.
Without a GPU the GPU figures are skipped, said so in the output, and the CPU parts
(the phase clock of a tiny sweep) still run: the test suite runs that as its smoke mode.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import RESULTS, machine, ray_for, timed, write

SHARES = (1.0, 0.5, 0.25, 0.125)
WORKLOAD = {
    "dataset": "synthetic",
    "synthetic_samples": 50_000,
    "synthetic_features": 256,
    "synthetic_classes": 10,
    "hidden": 512,
    "depth": 4,
    "batch_size": 128,
    "epochs": 4,
}
SMOKE_WORKLOAD = {**WORKLOAD, "synthetic_samples": 400, "synthetic_features": 16,
                  "hidden": 32, "depth": 2, "epochs": 2}  # fmt: skip


def gpu_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return int(torch.cuda.device_count())


def sweep(trials: int, share: float, workload: dict[str, Any]) -> dict[str, Any]:
    # Trials at once: as many as the GPUs hold at this share (all of them on the CPU).
    concurrent = max(1, int(gpu_count() / share)) if share else 2
    return {
        "name": f"bench-gpu-{share:g}",
        "trainable": "builtin:classifier",
        "metric": "val_accuracy",
        "mode": "max",
        "num_samples": trials,
        "searcher": {"kind": "random", "seed": 0},
        "max_concurrent_trials": concurrent,
        "resources_per_trial": {"cpu": 1, "gpu": share},
        "params": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
        "config": workload,
    }


@contextmanager
def gpu_utilization(into: list[float], period_s: float = 0.2) -> Iterator[None]:
    """Sample every GPU's utilization (percent) while the block runs; nothing without NVML."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no NVML: no samples
        yield
        return
    handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(period_s):
            into.append(
                sum(pynvml.nvmlDeviceGetUtilizationRates(h).gpu for h in handles) / len(handles)
            )

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        pynvml.nvmlShutdown()


def measure(trials: int, share: float, workload: dict[str, Any]) -> dict[str, Any]:
    from rich.console import Console

    from tuner.engine.phases import Phases
    from tuner.engine.runner import RunOptions, run_sweep
    from tuner.spec import parse_spec

    wall: dict[str, float] = {}
    startup: dict[str, float] = {}
    samples: list[float] = []
    phases = Phases()
    phases.mark("command started")
    with (
        ray_for(startup, "ray"),
        tempfile.TemporaryDirectory(prefix="bench-gpu-") as folder,
        gpu_utilization(samples),
        timed(wall, "sweep"),
    ):
        run_sweep(
            parse_spec(sweep(trials, share, workload)),
            RunOptions(
                tracking_uri=f"sqlite:///{folder}/mlflow.db",
                storage=f"{folder}/runs",
                console=Console(file=io.StringIO()),
                phases=phases,
            ),
        )
    table_ = phases.table()
    moments = {name: float(at) for name, at, _ in table_}
    ends = [float(at) + float(took) for _, at, took in table_ if took]
    return {
        "share": share,
        "start_to_first_result_s": moments["first result"] - moments["command started"],
        "last_trial_to_end_s": max(ends) - moments["last trial ended"],
        "wall_s": wall["sweep"],
        "ray_startup_s": startup["ray"],
        "trials_per_hour": trials * 3600 / wall["sweep"],
        "gpu_utilization_mean": sum(samples) / len(samples) if samples else None,
        "phases": [{"phase": name, "at_s": at, "took_s": took} for name, at, took in table_],
    }


def run(trials: int, shares: Sequence[float], workload: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    gpus = gpu_count()
    result: dict[str, Any] = {"machine": machine(), "gpus": gpus, "trials": trials}
    if gpus == 0:
        result["skipped"] = "no CUDA GPU here: the GPU figures need one; CPU phases only"
        result["runs"] = [measure(trials, 0.0, workload)]
    else:
        result["runs"] = [measure(trials, share, workload) for share in shares]
    result["benchmark_s"] = time.perf_counter() - started
    return result


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        ("gpu per trial", "wall s", "trials/hour", "mean GPU util %", "start to first result s",
         "last trial to end s", "ray start s")
    ]  # fmt: skip
    for run_ in result["runs"]:
        utilization = run_["gpu_utilization_mean"]
        rows.append(
            (
                f"{run_['share']:g}" if run_["share"] else "none (CPU)",
                f"{run_['wall_s']:.1f}",
                f"{run_['trials_per_hour']:.0f}",
                f"{utilization:.0f}" if utilization is not None else "",
                f"{run_['start_to_first_result_s']:.1f}",
                f"{run_['last_trial_to_end_s']:.1f}",
                f"{run_['ray_startup_s']:.1f}",
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--smoke", action="store_true", help="2 tiny trials")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    workload = SMOKE_WORKLOAD if args.smoke else WORKLOAD
    trials = 2 if args.smoke else args.trials
    result = run(trials, SHARES[:1] if args.smoke else SHARES, workload)
    if "skipped" in result:
        print(f"bench.gpu: {result['skipped']}")
    return write("gpu-smoke" if args.smoke else "gpu", result, table(result), args.out)


if __name__ == "__main__":
    main()
