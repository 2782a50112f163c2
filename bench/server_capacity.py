"""What one `log-batch` request costs an MLflow tracking server on PostgreSQL, in CPU:
the figure a head node's capacity follows from (docs/performance.md).

    python -m bench.server_capacity              # --workers 1, 2 and 4; 20 s each
    python -m bench.server_capacity --gunicorn   # MLflow's Flask app under gunicorn, as
                                                 # the head runs it (tuner's fast writes)
    python -m bench.server_capacity --smoke      # one server, 2 s, SQLite, gunicorn

A pool of client threads sends MLflow's `log-batch` requests as fast as the server
answers them, over runs created beforehand, each request holding one result (3
metrics) or ten (30), as tuner's writer sends them when it keeps up and when its
window has grown. Measured per request: the CPU of the server's processes (uvicorn and
its workers), of PostgreSQL's, and of the clients; the requests answered per second;
the latency. The clients share the machine's cores with the server, as the driver does
on a head node; their CPU is reported apart so that it can be subtracted.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
from mlflow import MlflowClient
from mlflow.entities import Metric

from bench.common import RESULTS, machine, own_cpu_s, write
from bench.servers import http_server_name, store_roots, tracking_server

CLIENT_THREADS = 16
RUNS = 200
METRICS = ("train_loss", "val_loss", "val_accuracy")
PAYLOADS = {"1 result (3 metrics)": 1, "10 results (30 metrics)": 10}


@contextmanager
def server(
    store: str, workers: int, gunicorn: bool = False, fast_writes: bool = True
) -> Iterator[tuple[str, list[psutil.Process]]]:
    """A tracking server; its URI and the processes whose CPU counts as the store's."""
    with tracking_server(store, workers, gunicorn, fast_writes) as (uri, backend_uri):
        yield uri, _store_processes(uri, backend_uri)


def _store_processes(uri: str, backend_uri: str | None) -> list[psutil.Process]:
    """The mlflow server's process tree and, on PostgreSQL, the postmaster's."""
    roots = store_roots(uri, backend_uri).values()
    return [p for root in roots for p in (root, *root.children(recursive=True))]


def cpu_of(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def flood(
    uri: str, processes: list[psutil.Process], results: int, seconds: float
) -> dict[str, Any]:
    """Requests of `results` results each, from CLIENT_THREADS threads for `seconds`."""
    client = MlflowClient(uri)
    experiment = client.create_experiment(f"capacity-{results}-{time.time_ns()}")
    runs = [client.create_run(experiment).info.run_id for _ in range(RUNS)]
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def send(thread: int) -> None:
        step = 0
        while time.monotonic() < deadline:
            step += 1
            stamp = int(time.time() * 1000)
            steps = range(step, step + results)
            metrics = [Metric(key, 1.0 / s, stamp, s) for s in steps for key in METRICS]
            run = runs[(thread * 7919 + step) % RUNS]
            started = time.monotonic()
            client.log_batch(run, metrics=metrics)
            with lock:
                latencies.append(time.monotonic() - started)
            step += results

    store_cpu, clients_cpu, started = cpu_of(processes), own_cpu_s(), time.monotonic()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(send, range(CLIENT_THREADS)))
    wall = time.monotonic() - started
    store_cpu, clients_cpu = cpu_of(processes) - store_cpu, own_cpu_s() - clients_cpu
    latencies.sort()
    count = len(latencies)
    return {
        "requests": count,
        "requests_per_s": count / wall,
        "store_cpu_ms_per_request": 1000 * store_cpu / count,
        "clients_cpu_ms_per_request": 1000 * clients_cpu / count,
        "latency_p50_ms": 1000 * latencies[count // 2],
        "latency_p95_ms": 1000 * latencies[int(count * 0.95)],
    }


def run(
    store: str,
    worker_counts: Sequence[int],
    seconds: float,
    gunicorn: bool = False,
    fast_writes: bool = True,
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for workers in worker_counts:
        with server(store, workers, gunicorn, fast_writes) as (uri, processes):
            for payload, results in PAYLOADS.items():
                figures[f"--workers {workers}, {payload}"] = flood(uri, processes, results, seconds)
    return {
        "machine": machine(),
        "store": store,
        "http_server": http_server_name(gunicorn, fast_writes),
        "seconds_each": seconds,
        "figures": figures,
    }


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        ("server, request", "requests/s", "server + store CPU ms/request",
         "clients CPU ms/request", "latency p50 / p95 ms")
    ]  # fmt: skip
    for name, f in result["figures"].items():
        rows.append(
            (
                name,
                f"{f['requests_per_s']:.0f}",
                f"{f['store_cpu_ms_per_request']:.1f}",
                f"{f['clients_cpu_ms_per_request']:.1f}",
                f"{f['latency_p50_ms']:.0f} / {f['latency_p95_ms']:.0f}",
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--gunicorn", action="store_true", help="MLflow's Flask app under gunicorn, not uvicorn"
    )
    parser.add_argument(
        "--mlflow-own-writes",
        action="store_true",
        help="under gunicorn, without tuner's configuration: MLflow's own store's writes",
    )
    parser.add_argument("--smoke", action="store_true", help="one server, SQLite, gunicorn, 2 s")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        # Under gunicorn, as the head runs it: its 4 threads a worker keep the requests in
        # flight well under the store's pool of 15 connections. Under uvicorn, 16 clients
        # on one worker once exhausted that pool in CI, and requests timed out after 30 s.
        args.store, args.workers, args.seconds, args.gunicorn = "sqlite", [1], 2.0, True
    fast_writes = not args.mlflow_own_writes
    result = run(args.store, args.workers, args.seconds, args.gunicorn, fast_writes)
    name = "server-capacity-smoke" if args.smoke else f"server-capacity-{args.store}"
    name += "-gunicorn" if args.gunicorn else ""
    name += "-mlflow-writes" if args.gunicorn and not fast_writes else ""
    return write(name, result, table(result), args.out)


if __name__ == "__main__":
    main()
