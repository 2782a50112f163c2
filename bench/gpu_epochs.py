"""The GPU bench's in-process parts: an epoch with the data on the device against one
that copies every batch, and a fresh process's time to its first epoch (imports,
data, CUDA's start, the first optimizer's torch._dynamo import). No Ray, no tracking: the
trainer's loop alone, as plain Optuna would drive it.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench.common import REPO


def epoch_seconds(config: dict[str, Any], epochs: int = 3) -> list[float]:
    from tuner.trainer.loop import run_epochs

    run = run_epochs({**config, "epochs": epochs}, "classification", None)
    return [float(epoch.metrics["epoch_time_s"]) for epoch in run]


def placement(
    workload: dict[str, Any],
    batch_sizes: Sequence[int],
    compile_modes: Sequence[bool | str] = (True, "reduce-overhead"),
) -> list[dict[str, Any]]:
    """Per batch size: the epoch's time with the data copied per batch, and on the device.
        The first epoch is apart (CUDA and cuBLAS start in it); the steady one is the
        median of the others. Last, `compile: true` and `compile: reduce-overhead` (CUDA
    graphs, for launch-bound steps) at the workload's batch size (their first epochs
    compile)."""
    rows = []
    for batch_size in batch_sizes:
        for on_device in (False, True):
            rows.append(_timed({**workload, "batch_size": batch_size, "data_on_device": on_device}))
    for mode in compile_modes:
        rows.append({**_timed({**workload, "compile": mode}), "compile": mode})
    return rows


def _timed(config: dict[str, Any]) -> dict[str, Any]:
    times = epoch_seconds(config)
    return {
        "batch_size": config["batch_size"],
        "data_on_device": config.get("data_on_device", "auto"),
        "first_epoch_s": times[0],
        "epoch_s": statistics.median(times[1:]),
    }


# A fresh process: imports, data, model, one epoch.
_FRESH = """
import json, sys
from tuner.trainer.loop import run_epochs
next(run_epochs(json.loads(sys.argv[1]), "classification", None))
"""


def fresh_first_epoch(workload: dict[str, Any], repeats: int = 2) -> float:
    """Seconds from a fresh process's start to its first epoch's end, the best of
    `repeats` (what a trial in a new worker process pays before its first result,
    less Ray's part)."""
    config = json.dumps({**workload, "epochs": 1})
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", _FRESH, config], cwd=REPO, check=True)
        best = min(best, time.perf_counter() - started)
    return best


def shared_against_loaded(workload: dict[str, Any], rounds: int = 3) -> dict[str, float]:
    """The steady epoch's time (the median of epochs 2 and 3, the best of `rounds`) with
    the splits this process loaded, and with the same splits as a trial takes them from
    the sweep: out of Ray's object store, read-only, without a copy."""
    import ray

    from tuner.engine.shared_data import SharedData
    from tuner.spec import parse_spec
    from tuner.trainer.data import forget_adopted

    config = {**workload, "dataset": "synthetic"}
    loaded = min(statistics.median(epoch_seconds(config)[1:]) for _ in range(rounds))
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        spec = {
            "name": "bench-shared", "trainable": "builtin:classifier",
            "metric": "val_accuracy", "mode": "max", "config": config,
            "params": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2}},
        }  # fmt: skip
        shared = SharedData.of(parse_spec(spec))
        assert shared is not None
        forget_adopted()
        shared.take()
        from_store = min(statistics.median(epoch_seconds(config)[1:]) for _ in range(rounds))
    finally:
        forget_adopted()
        if started_here:
            ray.shutdown()
    return {"loaded_epoch_s": loaded, "shared_epoch_s": from_store}
