"""Tracking at cluster rates: tuner's own tracking writer (the code the Tune callback
feeds) fed by a simulated population of concurrent trials, into a real `mlflow server`
on PostgreSQL (what the infra's head node runs) or on SQLite, on loopback.

    python -m bench.rates                  # 1,000 trials, each shape for 60 s, PostgreSQL
    python -m bench.rates --store sqlite   # the same through a server on SQLite
    python -m bench.rates --smoke          # 20 trials for 3 s, a server on SQLite
    python -m bench.rates --in-flight 32   # the writer with 32 requests in flight, not 8
    python -m bench.rates --gunicorn       # MLflow's Flask app under gunicorn, not uvicorn,
                                           # as the head runs it (tuner's fast writes)
    python -m bench.rates --shape "every 2 s"   # one shape only

Ray's release tests' shapes: 1,000 concurrent trials reporting every 2 s, and 10 times a
second, every run created before the first result. Each result carries 3 metrics, as
the built-in trainer's do. Figures: results
per second submitted and written, the lag from submission to written (p50, p95, max),
how long the writer took to drain after the last result, how long the driver was held
back by a full queue, the driver's CPU per result (the simulated trials' submissions
included) and its memory. Every run's points are read back: nothing lost, nothing doubled.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
from mlflow import MlflowClient
from mlflow.entities import Metric, RunStatus

from bench.common import RESULTS, machine, own_cpu_s, rss_mb, write
from bench.server_capacity import cpu_of, server
from bench.servers import http_server_name
from tuner.tracking.writer import CreateRun, EndRun, LogMetrics, TrackingWriter, requests_in_flight

SHAPES = {"every 2 s": 2.0, "10 a second": 0.1}
METRICS = ("train_loss", "val_loss", "val_accuracy")
SERVER_WORKERS = 4  # as the head node runs it (infra/scripts/bootstrap-head.sh)
TICK_S = 0.02
FINISHED = RunStatus.to_string(RunStatus.FINISHED)


def simulate(
    uri: str,
    store_processes: list[psutil.Process],
    shape: str,
    trials: int,
    duration_s: float,
    in_flight: int | None = None,
) -> dict[str, Any]:
    """`trials` trials, each reporting every SHAPES[shape] seconds (staggered), for
    `duration_s`; then every run ends and the writer drains."""
    period = SHAPES[shape]
    client = MlflowClient(uri)
    experiment_id = client.create_experiment(f"bench-rates-{shape}-{time.time_ns()}")
    writer = TrackingWriter(client, experiment_id, in_flight or requests_in_flight(uri))
    ids = [f"t{n:05d}" for n in range(trials)]
    for trial in ids:
        writer.submit(CreateRun(trial, trial, {"lr": "0.01"}, {"tuner.trial_id": trial}))
    # The steady state is measured: every run exists before the first result.
    writer.flush()
    writer.stats.reset()
    cpu, memory, store_cpu = own_cpu_s(), rss_mb(), cpu_of(store_processes)
    start = time.monotonic()
    submitted = 0
    while (now := time.monotonic()) - start < duration_s:
        # Trial n reports at start + (n / trials + k) * period: results spread evenly.
        due = int((now - start) / period * trials)
        for result in range(submitted, due):
            step = result // trials + 1
            stamp = int(time.time() * 1000)
            metrics = tuple(Metric(key, 1.0 / step, stamp, step) for key in METRICS)
            writer.submit(LogMetrics(ids[result % trials], metrics))
        submitted = due
        time.sleep(TICK_S)
    reporting_s = time.monotonic() - start
    writer.flush()
    drained = time.monotonic()
    driver_cpu, store_cpu = own_cpu_s() - cpu, cpu_of(store_processes) - store_cpu
    stats = writer.stats
    # The results' lags and writes, not those of the runs' ends (1,000 at once) below.
    lags = {f"lag_p{q}_s": stats.lag_quantile(q / 100) for q in (50, 95)}
    lags["lag_max_s"], writes = stats.max_lag_s, stats.writes
    for trial in ids:
        writer.submit(EndRun(trial, FINISHED, {}))
    writer.flush()
    figures = {
        "trials": trials,
        "period_s": period,
        "reporting_s": reporting_s,
        "results": submitted,
        "results_per_s_submitted": submitted / reporting_s,
        "results_per_s_written": submitted / (drained - start),
        "drain_after_last_result_s": drained - start - reporting_s,
        "runs_ended_s": time.monotonic() - drained,
        **lags,
        "backpressure_s": stats.backpressure_s,
        "driver_cpu_ms_per_result": 1000 * driver_cpu / max(submitted, 1),
        "driver_rss_growth_mb": rss_mb() - memory,
        # A run's pending writes go out together: its requests per second, about.
        "run_writes_per_s": writes / (drained - start),
        "store_cpu_cores": store_cpu / (drained - start),
    }
    writer.close()
    figures.update(read_back(client, writer, ids, submitted))
    return figures


def read_back(
    client: MlflowClient, writer: TrackingWriter, ids: list[str], results: int
) -> dict[str, int]:
    """Every point of one metric in every run, as a user's client sees it."""
    trials = len(ids)

    def steps_of(n: int) -> tuple[int, list[int]]:
        run_id = writer.run_id(ids[n])
        history = client.get_metric_history(run_id, METRICS[1]) if run_id else []
        # Trial n reported results n, n + trials, n + 2 * trials, ...: steps 1, 2, 3...
        expected = len(range(n, results, trials))
        return expected, sorted(point.step for point in history)

    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(steps_of, range(trials)))
    lost = sum(max(0, expected - len(set(steps))) for expected, steps in found)
    doubled = sum(len(steps) - len(set(steps)) for _, steps in found)
    return {"points_read_back": sum(len(s) for _, s in found), "lost": lost, "doubled": doubled}


def run(
    store: str,
    trials: int,
    duration_s: float,
    in_flight: int | None = None,
    gunicorn: bool = False,
    shapes: Sequence[str] = tuple(SHAPES),
    fast_writes: bool = True,
) -> dict[str, Any]:
    with server(store, SERVER_WORKERS, gunicorn, fast_writes) as (uri, processes):
        figures = {
            shape: simulate(uri, processes, shape, trials, duration_s, in_flight)
            for shape in shapes
        }
    return {
        "requests_in_flight": in_flight or requests_in_flight(uri),
        "machine": machine(),
        "store": f"mlflow server on {store}",
        "server_workers": SERVER_WORKERS,
        "http_server": http_server_name(gunicorn, fast_writes),
        "trials": trials,
        "duration_s": duration_s,
        "shapes": figures,
    }


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        ("shape", "results/s submitted", "written", "lag p50 s", "p95 s", "max s", "drain s",
         "held back s", "runs ended s", "driver CPU ms/result", "run writes/s",
         "server + store CPU cores", "lost", "doubled")
    ]  # fmt: skip
    for shape, f in result["shapes"].items():
        rows.append(
            (
                f"{f['trials']} trials, {shape}",
                f"{f['results_per_s_submitted']:.0f}",
                f"{f['results_per_s_written']:.0f}",
                f"{f['lag_p50_s']:.2f}",
                f"{f['lag_p95_s']:.2f}",
                f"{f['lag_max_s']:.2f}",
                f"{f['drain_after_last_result_s']:.1f}",
                f"{f['backpressure_s']:.1f}",
                f"{f['runs_ended_s']:.1f}",
                f"{f['driver_cpu_ms_per_result']:.2f}",
                f"{f['run_writes_per_s']:.0f}",
                f"{f['store_cpu_cores']:.2f}",
                str(f["lost"]),
                str(f["doubled"]),
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--store", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per shape")
    parser.add_argument("--smoke", action="store_true", help="20 trials, 3 s, SQLite server")
    parser.add_argument(
        "--in-flight", type=int, help="the writer's requests in flight (default: tuner's)"
    )
    parser.add_argument(
        "--gunicorn", action="store_true", help="MLflow's Flask app under gunicorn, not uvicorn"
    )
    parser.add_argument(
        "--mlflow-own-writes",
        action="store_true",
        help="under gunicorn, without tuner's configuration: MLflow's own store's writes",
    )
    parser.add_argument("--shape", choices=list(SHAPES), help="one shape (default: both)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.store, args.trials, args.duration = "sqlite", 20, 3.0
    shapes = [args.shape] if args.shape else list(SHAPES)
    fast_writes = not args.mlflow_own_writes
    result = run(
        args.store, args.trials, args.duration, args.in_flight, args.gunicorn, shapes, fast_writes
    )
    name = "rates-smoke" if args.smoke else f"rates-{args.store}"
    name += f"-in-flight-{args.in_flight}" if args.in_flight else ""
    name += "-gunicorn" if args.gunicorn else ""
    name += "-mlflow-writes" if args.gunicorn and not fast_writes else ""
    name += f"-{args.shape.replace(' ', '-')}" if args.shape else ""
    return write(name, result, table(result), args.out)


if __name__ == "__main__":
    main()
