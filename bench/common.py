"""Shared by the benchmarks: the machine they ran on, timing, and JSON + table output."""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner.engine.outcome import SweepResult

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent
SLOTS = 2
# Set by the test suite, which runs every benchmark's smoke mode to check that it still
# works: one Ray for all of a benchmark's systems, started by the suite, saves ~4 s per
# system. A benchmark proper gives each system a fresh Ray, as a user's sweep gets.
SHARED_RAY_ENV = "BENCH_SHARED_RAY"


@contextmanager
def ray_for(times: dict[str, float], key: str, num_cpus: int = SLOTS) -> Iterator[None]:
    """A fresh Ray for one system's run; its start-up goes into times[key], apart."""
    import ray

    if os.environ.get(SHARED_RAY_ENV) and ray.is_initialized():
        times[key] = 0.0
        yield
        return
    with timed(times, key):
        ray.init(
            # "local": always a Ray of its own, never a cluster this machine runs already.
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=bool(os.environ.get("BENCH_RAY_LOGS")),  # to see why a run hangs
            # The workers import the benchmark's trainables from the checkout, and
            # everything else from where this process does (a GPU machine installs
            # the project's dependencies on PYTHONPATH).
            runtime_env={"env_vars": {"PYTHONPATH": python_path()}},
        )
    try:
        yield
    finally:
        ray.shutdown()


def python_path() -> str:
    """The checkout first, then this process's own PYTHONPATH."""
    return os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))


def machine() -> dict[str, Any]:
    import optuna
    import ray
    import torch

    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "ray": ray.__version__,
        "optuna": optuna.__version__,
        "torch": torch.__version__,
    }


@contextmanager
def timed(into: dict[str, float], key: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    into[key] = time.perf_counter() - started


def own_cpu_s() -> float:
    """This process's CPU time so far, user and system, in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float:
    """This process's resident memory (Linux), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_tuner(
    sweep: dict[str, Any], folder: str, tracking_uri: str | None = None, storage: str | None = None
) -> SweepResult:
    """A sweep through tuner's own runner, tracked in a SQLite store and stored inside
    `folder` unless another tracking URI or storage is given."""
    import io

    from rich.console import Console

    from tuner.engine.runner import RunOptions, run_sweep
    from tuner.spec import parse_spec

    Path(folder).mkdir(parents=True, exist_ok=True)
    return run_sweep(
        parse_spec(sweep),
        RunOptions(
            tracking_uri=tracking_uri or f"sqlite:///{folder}/mlflow.db",
            storage=storage or f"{folder}/runs",
            console=Console(file=io.StringIO()),
        ),
    )


def write(name: str, payload: dict[str, Any], table: list[tuple[str, ...]], out: Path) -> Path:
    """Write NAME.json and NAME.md (a markdown table) under `out`; print the table."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2, sort_keys=True))
    header, *rows = table
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    text = "\n".join(lines) + "\n"
    (out / f"{name}.md").write_text(text)
    print(text)
    return out / f"{name}.json"
