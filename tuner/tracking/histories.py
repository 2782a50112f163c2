"""One metric's history for many runs, in a few requests rather than one per run.

MLflow's client asks for one run's history at a time: a 10,000-trial sweep read back
for its report was 10,000 requests, 31 s on a local SQLite file and minutes through a
tracking server. MLflow has bulk reads that its client does not expose: a database
store answers many runs in one query, and `mlflow server` has the bulk route its own
UI charts use (at most 100 runs and 25,000 points a request). Anything else (or a
bulk answer that may have been cut short) falls back to a run at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mlflow import MlflowClient

logger = logging.getLogger(__name__)

History = dict[int, float]  # step -> value

# Runs per bulk query on a database store (a SQL `IN` list of run ids).
DATABASE_RUNS = 500
# What `mlflow server`'s bulk route answers at most per request.
SERVER_RUNS = 100
SERVER_POINTS = 25_000
SERVER_ROUTE = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
# Histories a run at a time: a few requests in flight to a tracking server.
REQUESTS_IN_FLIGHT = 8


def metric_histories(
    client: MlflowClient, run_ids: Sequence[str], metric: str
) -> dict[str, History]:
    """Every run's `metric` by step (an empty history for a run that logged none)."""
    histories: dict[str, History] = {run_id: {} for run_id in run_ids}
    left = list(run_ids)
    bulk, size, in_flight = _bulk_reader(_store_of(client), metric)
    if bulk is not None:
        chunks = [run_ids[start : start + size] for start in range(0, len(run_ids), size)]
        with ThreadPoolExecutor(in_flight) as pool:
            answers = list(pool.map(lambda chunk: _bulk_or_none(bulk, chunk), chunks))
        left = []
        for chunk, answered in zip(chunks, answers, strict=True):
            if answered is None:
                left += chunk
            else:
                histories.update(answered)
    with ThreadPoolExecutor(REQUESTS_IN_FLIGHT) as pool:
        one_by_one = pool.map(lambda run_id: _one(client, run_id, metric), left)
        histories.update(zip(left, one_by_one, strict=True))
    return histories


Bulk = Callable[[Sequence[str]], "dict[str, History] | None"]


def _bulk_reader(store: Any, metric: str) -> tuple[Bulk | None, int, int]:
    """How this store reads many runs' histories at once, how many runs per request,
    and how many requests at once: a server answers several (its workers, its
    database's connections) while this process reads the last answer; a database
    file, one query at a time."""
    if hasattr(store, "get_metric_history_bulk"):
        return (lambda ids: _from_database(store, ids, metric)), DATABASE_RUNS, 1
    if hasattr(store, "get_host_creds"):
        return (lambda ids: _from_server(store, ids, metric)), SERVER_RUNS, REQUESTS_IN_FLIGHT
    return None, 0, 0


def _bulk_or_none(bulk: Bulk, run_ids: Sequence[str]) -> dict[str, History] | None:
    """`bulk`'s answer for `run_ids`, or None: they are then read a run at a time."""
    try:
        return bulk(run_ids)
    except Exception as exc:  # an older server, a proxy that blocks the route
        logger.debug("no bulk metric history: %s", exc)
        return None


def _store_of(client: MlflowClient) -> Any:
    # MLflow's client keeps its store private; without one, a run at a time.
    tracking = getattr(client, "_tracking_client", None)
    return getattr(tracking, "store", None)


def _one(client: MlflowClient, run_id: str, metric: str) -> History:
    return {point.step: point.value for point in client.get_metric_history(run_id, metric)}


def _from_database(store: Any, run_ids: Sequence[str], metric: str) -> dict[str, History]:
    histories: dict[str, History] = {run_id: {} for run_id in run_ids}
    # Ordered by run, then time: a step logged twice keeps its later value, as the
    # one-run read does.
    for point in store.get_metric_history_bulk(run_ids, metric, max_results=None):
        histories[point.run_id][point.step] = point.value
    return histories


def _from_server(store: Any, run_ids: Sequence[str], metric: str) -> dict[str, History] | None:
    from mlflow.utils.rest_utils import http_request_safe

    response = http_request_safe(
        store.get_host_creds(),
        SERVER_ROUTE,
        "GET",
        params={"run_id": list(run_ids), "metric_key": metric, "max_results": SERVER_POINTS},
    )
    points = response.json().get("metrics", [])
    if len(points) >= SERVER_POINTS:
        return None  # perhaps cut short: these runs are read one at a time
    histories: dict[str, History] = {run_id: {} for run_id in run_ids}
    for point in sorted(points, key=lambda p: (p["run_id"], p["timestamp"], p["step"])):
        histories[point["run_id"]][int(point["step"])] = float(point["value"])
    return histories
