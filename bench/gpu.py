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

Also (bench.gpu_epochs): the epoch's time with the data on the device against copied
per batch, at batch 128 and 1024; a compiled model's epoch, in torch's default mode and
with CUDA graphs (`reduce-overhead`); an epoch on
data taken from Ray's object store, as trials take the sweep's, against data the
process loaded; a fresh process's time to its first epoch; and one whole
`tuner run --profile` at `gpu: 0.25`, timed as a whole process, for the time from
the command to the first result (the first GPU epoch's end) and from the last trial's
end to the summary. Each part's figures are
written as soon as they are taken: a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import REPO, RESULTS, SLOTS, machine, ray_for, timed, write
from bench.gpu_epochs import fresh_first_epoch, placement, shared_against_loaded

# The targets first (packing and utilization, then start and finish): a lent
# GPU's minutes may run out before the last part.
PARTS = ("shares", "command", "epochs")
SHARES = (1.0, 0.25, 0.125, 0.5)  # the 1 vs 4 per GPU comparison first
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
    # Every core: trials packed 8 to a GPU take a CPU each.
    cpus = (os.cpu_count() or SLOTS) if share else SLOTS
    with (
        ray_for(startup, "ray", num_cpus=cpus),
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
    return {
        "share": share,
        **_phase_figures(phases.table()),
        "wall_s": wall["sweep"],
        "ray_startup_s": startup["ray"],
        "trials_per_hour": trials * 3600 / wall["sweep"],
        "gpu_utilization_mean": sum(samples) / len(samples) if samples else None,
    }


def _phase_figures(table_: Sequence[tuple[str, Any, Any]]) -> dict[str, Any]:
    moments = {name: float(at) for name, at, _ in table_}
    ends = [float(at) + float(took) for _, at, took in table_ if took]
    return {
        "start_to_first_result_s": moments["first result"] - moments["command started"],
        # To the summary where one is printed (the command's), else to the last phase's end.
        "last_trial_to_end_s": moments.get("summary printed", max(ends))
        - moments["last trial ended"],
        "phases": [{"phase": name, "at_s": at, "took_s": took} for name, at, took in table_],
    }


def whole_command(trials: int, share: float, workload: dict[str, Any]) -> dict[str, Any]:
    """One `tuner run --profile` as a user runs it, timed as a whole process."""
    import yaml

    with tempfile.TemporaryDirectory(prefix="bench-gpu-cli-") as folder:
        sweep_file = Path(folder) / "sweep.yaml"
        sweep_file.write_text(yaml.safe_dump(sweep(trials, share, workload)))
        environment = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        started = time.perf_counter()
        finished = subprocess.run(
            [
                sys.executable, "-m", "tuner.cli", "run", str(sweep_file), "--profile",
                "--tracking-uri", f"sqlite:///{folder}/mlflow.db", "--storage", f"{folder}/runs",
            ],
            cwd=REPO, env=environment, capture_output=True, text=True, check=False,
        )  # fmt: skip
        wall = time.perf_counter() - started
    if finished.returncode != 0:
        return {"share": share, "failed": finished.stderr[-2000:]}
    return {"share": share, "process_wall_s": wall, **_phase_figures(_profile(finished.stderr))}


def _profile(stderr: str) -> list[tuple[str, str, str]]:
    """The phase table that --profile prints: name, at s, took s."""
    rows = []
    for line in stderr.splitlines():
        match = re.match(r"^(\s*\S.*?)\s+(\d+\.\d+)\s+(\d+\.\d+|)\s*$", line)
        if match:
            rows.append((match[1], match[2], match[3]))
    return rows


def run(
    trials: int,
    shares: Sequence[float],
    workload: dict[str, Any],
    save: Callable[[dict[str, Any]], object],
    parts: Sequence[str] = PARTS,
) -> dict[str, Any]:
    started = time.perf_counter()
    gpus = gpu_count()
    result: dict[str, Any] = {"machine": machine(), "gpus": gpus, "trials": trials, "runs": []}
    if gpus:
        import torch

        result["gpu"] = torch.cuda.get_device_name(0)
    else:
        result["skipped"] = "no CUDA GPU here: the GPU figures need one; CPU phases only"
    # The smoke run checks each part's code once, not torch's compiler on a CPU: one batch
    # size, one compiled mode, one of each repeat (it took 70 s of the suite's time).
    smoke = workload is SMOKE_WORKLOAD
    for part in parts:  # in the order asked: a run cut short keeps the first parts
        if part == "epochs":
            result["placement"] = placement(
                workload,
                (workload["batch_size"],) if smoke else (workload["batch_size"], 1024),
                (True,) if smoke and not gpus else (True, "reduce-overhead"),
            )
            save(result)
            result["fresh_first_epoch_s"] = fresh_first_epoch(workload, 1 if smoke else 2)
            save(result)
            result["shared_data"] = shared_against_loaded(workload, 1 if smoke else 3)
        elif part == "command":
            result["whole_command"] = whole_command(trials, 0.25 if gpus else 0.0, workload)
        elif part == "shares":
            for share in shares if gpus else (0.0,):
                result["runs"].append(measure(trials, share, workload))
                result["benchmark_s"] = time.perf_counter() - started
                save(result)
        else:
            raise ValueError(f"no part {part!r}: the parts are {', '.join(PARTS)}")
        save(result)
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
    command = result.get("whole_command", {})
    if "process_wall_s" in command:
        rows.append(
            (
                f"`tuner run` at {command['share']:g}, whole process",
                f"{command['process_wall_s']:.1f}", "", "",
                f"{command['start_to_first_result_s']:.1f}",
                f"{command['last_trial_to_end_s']:.1f}", "",
            )
        )  # fmt: skip
    for row in result.get("placement", []):
        places = {True: "on the device", False: "copied per batch"}
        where = places.get(row["data_on_device"], "auto")
        mode = row.get("compile")
        compiled = {True: ", compiled", "reduce-overhead": ", compiled (CUDA graphs)"}.get(mode, "")
        rows.append(
            (f"epoch at batch {row['batch_size']}, data {where}{compiled}", f"{row['epoch_s']:.3f}",
             "", "", f"first epoch {row['first_epoch_s']:.2f}", "", "")
        )  # fmt: skip
    shared = result.get("shared_data")
    if shared:
        rows.append(
            ("epoch, data loaded in the process / taken from the sweep (object store)",
             f"{shared['loaded_epoch_s']:.3f} / {shared['shared_epoch_s']:.3f}", "", "", "", "", "")
        )  # fmt: skip
    fresh = result.get("fresh_first_epoch_s")
    if fresh:
        rows.append(("fresh process to first epoch's end", f"{fresh:.1f}", "", "", "", "", ""))
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--smoke", action="store_true", help="2 tiny trials")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"which to measure, of {','.join(PARTS)}"
    )
    args = parser.parse_args(argv)
    unknown = set(args.parts.split(",")) - set(PARTS)
    if unknown:  # before the first part is measured, not after
        parser.error(f"--parts: no {', '.join(sorted(unknown))}; the parts are {','.join(PARTS)}")
    workload = SMOKE_WORKLOAD if args.smoke else WORKLOAD
    trials = 2 if args.smoke else args.trials
    name = "gpu-smoke" if args.smoke else "gpu"
    result = run(
        trials,
        SHARES[:1] if args.smoke else SHARES,
        workload,
        lambda partial: write(name, partial, table(partial), args.out),
        args.parts.split(","),
    )
    if "skipped" in result:
        print(f"bench.gpu: {result['skipped']}")
    return write(name, result, table(result), args.out)


if __name__ == "__main__":
    main()
