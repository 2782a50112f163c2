"""Per-trial cost of each tracking store: trials that do no work, tracked in a local
SQLite file (the laptop default), through `mlflow server` on SQLite, and through
`mlflow server` on PostgreSQL (what the infra's head node runs, tuner's fast writes
included), all on loopback; the comparator is the same server with MLflow's own writes.

    python -m bench.stores                  # 100 and 500 trials per store
    python -m bench.stores --smoke          # 2 and 6 trials through a server on SQLite

The per-trial overhead is the difference between a long and a short sweep, in
slot-seconds (wall x slots / trials), so the fixed start of a sweep cancels. Each store
gets a fresh Ray and a warm-up sweep first (imports, the store's schema). The driver's
CPU time over the long sweep says whether the driver worked or waited. The short sweep
is long enough that, on a local SQLite file, both sweeps write through the writer's
child process (tuner.tracking.writer.WRITER_PROCESS_FROM_TRIALS): a short sweep without
it would leave the child's start in the long sweep's per-trial figure.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from bench.common import (
    RESULTS,
    SLOTS,
    machine,
    own_cpu_s,
    ray_for,
    rss_mb,
    run_tuner,
    timed,
    write,
)
from bench.servers import (
    http_server_name,
    postgres_missing,
    store_roots,
    tracking_server,
    tree_cpu_s,
)
from tuner.tracking.writer import WRITER_PROCESS_FROM_TRIALS

WARM_UP_TRIALS = 20
# The head node runs `mlflow server --workers 4` under gunicorn with threads
# (infra/scripts/bootstrap-head.sh, bench.servers.HEAD_GUNICORN_OPTS).
SERVER_WORKERS = 4


def null_sweep(name: str, trials: int) -> dict[str, Any]:
    return {
        "name": name,
        "trainable": "bench.workload:no_op",
        "metric": "score",
        "mode": "max",
        "num_samples": trials,
        "searcher": {"kind": "random", "seed": 0},
        "max_concurrent_trials": SLOTS,
        "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    }


@contextmanager
def server_on(store: str, fast_writes: bool = True) -> Iterator[tuple[str, str | None]]:
    """An `mlflow server` on loopback over a SQLite file or a PostgreSQL, served as the
    head node serves it (or with MLflow's own store's writes); its URI and PostgreSQL's
    (None on SQLite)."""
    with tracking_server(store, SERVER_WORKERS, gunicorn=True, fast_writes=fast_writes) as uris:
        yield uris


STORES: dict[str, Callable[[], AbstractContextManager[tuple[str | None, str | None]]]] = {
    "local SQLite file": lambda: nullcontext((None, None)),
    "mlflow server on SQLite": lambda: server_on("sqlite"),
    "mlflow server on PostgreSQL": lambda: server_on("postgresql"),
    # The comparator: the same server with MLflow's own writes (the head's before tuner's).
    "mlflow server on PostgreSQL, MLflow's own writes": lambda: server_on("postgresql", False),
}


def measure(store: str, short: int, long: int) -> dict[str, Any]:
    wall: dict[str, float] = {}
    startup: dict[str, float] = {}
    with (
        STORES[store]() as (tracking_uri, backend_uri),
        ray_for(startup, "ray"),
        tempfile.TemporaryDirectory(prefix="bench-") as folder,
    ):
        uri = tracking_uri or f"sqlite:///{folder}/mlflow.db"
        run_tuner(null_sweep("bench-stores-warm-up", WARM_UP_TRIALS), f"{folder}/w", uri)
        with timed(wall, "short"):
            run_tuner(null_sweep("bench-stores-short", short), f"{folder}/s", uri)
        # Where a server's CPU goes: the `mlflow server` (gunicorn's workers) and its
        # database, on the same cores as the trials here.
        roots = store_roots(tracking_uri, backend_uri) if tracking_uri else {}
        store_cpu = {name: tree_cpu_s(root) for name, root in roots.items()}
        cpu = own_cpu_s()
        warm = rss_mb()
        with timed(wall, "long"):
            run_tuner(null_sweep("bench-stores-long", long), f"{folder}/l", uri)
        cpu = own_cpu_s() - cpu
        store_cpu = {name: tree_cpu_s(roots[name]) - before for name, before in store_cpu.items()}
    per_trial = (wall["long"] - wall["short"]) * SLOTS / (long - short)
    return {
        "wall_s": wall,
        "ray_startup_s": startup["ray"],
        "overhead_slot_s_per_trial": per_trial,
        "driver_cpu_s_long": cpu,
        "driver_rss_growth_mb_long": rss_mb() - warm,
        # The store's processes over the long sweep, a trial's share in milliseconds.
        "store_cpu_ms_per_trial_long": {
            name: 1000 * cpu_s / long for name, cpu_s in store_cpu.items()
        },
    }


def run(short: int, long: int, stores: Sequence[str]) -> dict[str, Any]:
    return {
        "machine": machine(),
        "trials": {"short": short, "long": long},
        "slots": SLOTS,
        "server_workers": SERVER_WORKERS,
        "http_server": http_server_name(gunicorn=True),
        "stores": {store: measure(store, short, long) for store in stores},
    }


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        ("tracking store", "short s", "long s", "overhead slot-s/trial", "x local SQLite",
         "driver CPU s (long)", "server + database CPU ms/trial (long)")
    ]  # fmt: skip
    stores = result["stores"]
    local = stores.get("local SQLite file", {}).get("overhead_slot_s_per_trial")
    for name, figures in stores.items():
        per_trial = figures["overhead_slot_s_per_trial"]
        rows.append(
            (
                name,
                f"{figures['wall_s']['short']:.1f}",
                f"{figures['wall_s']['long']:.1f}",
                f"{per_trial:.3f}",
                f"{per_trial / local:.2f}" if local else "",
                f"{figures['driver_cpu_s_long']:.1f}",
                " + ".join(f"{ms:.1f}" for ms in figures["store_cpu_ms_per_trial_long"].values()),
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=WRITER_PROCESS_FROM_TRIALS)
    parser.add_argument("--long", type=int, default=WRITER_PROCESS_FROM_TRIALS + 400)
    parser.add_argument("--store", action="append", choices=sorted(STORES), dest="stores")
    parser.add_argument("--smoke", action="store_true", help="2 and 6 trials, server on SQLite")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    stores = args.stores or [s for s in STORES if "PostgreSQL" not in s or not postgres_missing()]
    if args.smoke:
        args.short, args.long = 2, 6
        stores = args.stores or ["mlflow server on SQLite"]
    result = run(args.short, args.long, stores)
    return write("stores-smoke" if args.smoke else "stores", result, table(result), args.out)


if __name__ == "__main__":
    main()
