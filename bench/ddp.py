"""Scaling of one multi-worker trial on CPUs: the built-in classifier as one process on
1 CPU against 2 data-parallel workers x 1 CPU (DDP over gloo), the same global batch.

    python -m bench.ddp            # the workload below, 4 epochs each
    python -m bench.ddp --smoke    # a tiny one (the test suite runs it)

The workload is big enough that a step's compute is not dwarfed by its all-reduce: an
MLP 1024 x 3 (2.4 M weights, 9.6 MB of gradients a step) on synthetic data (32,768 x
256, 10 classes), global batch 1,024. Figures per setting: the epoch's training
throughput (train samples / the trainer's own `epoch_time_s`, median of the epochs after
the first), the 2-worker efficiency (speed-up / 2), the trial's wall time, the torch
threads each process trained with (a fair comparison has one per CPU: Ray sets
OMP_NUM_THREADS from the CPUs it gives), and the load average around the runs (the
machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import RESULTS, machine, ray_for, run_tuner, timed, write

WORKLOAD: dict[str, Any] = {
    "dataset": "synthetic",
    "synthetic_samples": 32_768,
    "synthetic_features": 256,
    "synthetic_classes": 10,
    "hidden": 1024,
    "depth": 3,
    "batch_size": 1024,
    "optimizer": "sgd",
    "lr": 0.05,
    "epochs": 4,
}
SMOKE_WORKLOAD = {**WORKLOAD, "synthetic_samples": 400, "synthetic_features": 16,
                  "hidden": 32, "depth": 2, "batch_size": 64, "epochs": 2}  # fmt: skip
THREADS_KEY = "bench_threads_file"


def _threads_seen(config: dict[str, Any], rank: int) -> dict[str, Any]:
    """Record this process's torch threads in the file the bench named; the knobs left."""
    import torch

    path = Path(config[THREADS_KEY])
    path.with_name(f"{path.name}.{rank}").write_text(str(torch.get_num_threads()))
    return {key: value for key, value in config.items() if key != THREADS_KEY}


def one_process(config: dict[str, Any]) -> None:
    """The built-in classifier's one-process trial, its torch threads recorded."""
    from tuner.trainer.classifier import train_classifier

    train_classifier(_threads_seen(config, 0))


def per_worker(config: dict[str, Any]) -> None:
    """The built-in classifier's Ray Train worker, its torch threads recorded."""
    import ray.train

    from tuner.trainer.classifier import train_classifier_worker

    knobs = _threads_seen(config, ray.train.get_context().get_world_rank())
    train_classifier_worker({"config": knobs, "checkpoint": None})


def sweep(workers: int, workload: dict[str, Any], threads_file: str) -> dict[str, Any]:
    return {
        "name": f"bench-ddp-{workers}",
        "trainable": "bench.ddp:per_worker" if workers > 1 else "bench.ddp:one_process",
        "metric": "val_accuracy",
        "mode": "max",
        "searcher": {"kind": "grid"},
        "resources_per_trial": {"workers": workers, "cpu": 1},
        "params": {"seed": {"type": "grid", "values": [0]}},
        "config": {**workload, THREADS_KEY: threads_file},
    }


def train_samples(workload: dict[str, Any]) -> int:
    from tuner.trainer.data import load_splits
    from tuner.trainer.knobs import ClassifierKnobs

    return len(load_splits(ClassifierKnobs(**workload), "classification").train.labels)


def measure(workers: int, workload: dict[str, Any], samples: int) -> dict[str, Any]:
    """One trial on `workers` workers x 1 CPU: its epochs' throughput and its threads."""
    from mlflow import MlflowClient

    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as folder:
        threads_file = f"{folder}/threads"
        with ray_for(times, "ray_start_s"), timed(times, "trial_wall_s"):
            result = run_tuner(sweep(workers, workload, threads_file), folder)
        assert result.best is not None and result.best.run_id is not None
        client = MlflowClient(f"sqlite:///{folder}/mlflow.db")
        epochs = [m.value for m in client.get_metric_history(result.best.run_id, "epoch_time_s")]
        threads = [int(Path(f"{threads_file}.{rank}").read_text()) for rank in range(workers)]
    steady = epochs[1:] or epochs  # the first epoch pays for warm-up
    epoch_s = statistics.median(steady)
    return {
        "epoch_time_s": epochs,
        "epoch_s": epoch_s,
        "samples_per_s": samples / epoch_s,
        "torch_threads": threads,
        **times,
    }


def run(workload: dict[str, Any]) -> dict[str, Any]:
    samples = train_samples(workload)
    load_before = os.getloadavg()
    settings = {workers: measure(workers, workload, samples) for workers in (1, 2)}
    speedup = settings[2]["samples_per_s"] / settings[1]["samples_per_s"]
    return {
        "machine": machine(),
        "workload": workload,
        "train_samples": samples,
        "settings": {f"{workers} x 1 CPU": figures for workers, figures in settings.items()},
        "speedup": speedup,
        "efficiency": speedup / 2,
        "target_speedup": 1.5,
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
    }


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        ("workers", "epoch s", "samples/s", "speed-up", "torch threads", "trial wall s")
    ]
    base = result["settings"]["1 x 1 CPU"]["samples_per_s"]
    for name, figures in result["settings"].items():
        rows.append((
            name,
            f"{figures['epoch_s']:.3f}",
            f"{figures['samples_per_s']:.0f}",
            f"{figures['samples_per_s'] / base:.2f}",
            ",".join(str(n) for n in figures["torch_threads"]),
            f"{figures['trial_wall_s']:.1f}",
        ))  # fmt: skip
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny workload")
    parser.add_argument("--batch-size", type=int, help="another global batch (default 1024)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    workload = SMOKE_WORKLOAD if args.smoke else WORKLOAD
    name = "ddp-smoke" if args.smoke else "ddp"
    if args.batch_size:
        workload = {**workload, "batch_size": args.batch_size}
        name += f"-b{args.batch_size}"
    result = run(workload)
    path = write(name, result, table(result), args.out)
    print(json.dumps({k: result[k] for k in ("speedup", "efficiency", "loadavg_before")}))
    return path


if __name__ == "__main__":
    main()
