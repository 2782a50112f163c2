"""Everything MLflow: one parent run per sweep, one child run per trial.

Why not Ray's MLflowLoggerCallback: it makes one synchronous request per metric per
result, has no parent run (ray #19978) and ignores the tracking URI inside trainables
(ray #36257). Here the driver is the only writer (SQLite allows one), every write goes
through one background thread in submission order, and the metrics of consecutive
results are coalesced into `log_batch` requests, so Tune's event loop never waits on
the tracking store.

A tracking server answers each request in tens of milliseconds, and serves several at
once: there the writes of different runs go out in parallel (a bounded number in
flight), each run's own writes still in order. A SQLite file takes one writer at a time.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import urlparse

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.environment_variables import MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT

from tuner.tracking.writer_stats import WriterStats

logger = logging.getLogger(__name__)

MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limits
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
# How long the writer lets results pile up before writing them: one request per trial
# per window instead of one per result (a SQLite write costs ~5 ms). Only how soon a
# point shows in the UI depends on it; flush() still waits for every write.
BATCH_WINDOW_S = 0.25
# Operations waiting to be written before submit() holds the driver back: about a minute
# of results from 1,000 trials reporting every 2 s, so a slow or lost tracking server
# cannot grow the driver's memory without bound. The wait is counted and reported.
MAX_QUEUED_OPERATIONS = 50_000
# Requests in flight to a tracking server: runs/create, log-batch and update of different
# trials overlap their round trips (~50 ms each on loopback, more across a network).
SERVER_REQUESTS_IN_FLIGHT = 8


def requests_in_flight(tracking_uri: str) -> int:
    """A tracking server serves requests in parallel; a SQLite file locks for each write."""
    return SERVER_REQUESTS_IN_FLIGHT if urlparse(tracking_uri).scheme in ("http", "https") else 1


def skip_run_links() -> None:
    """MLflow's set_terminated fetches the run again (one more request per trial on a
    server) only to print a link to it on stdout; tuner prints its own summary."""
    os.environ.setdefault(MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT.name, "true")


class TrackingError(RuntimeError):
    """Writes to the tracking store failed; raised when the sweep flushes its tracking."""


@dataclass(frozen=True)
class CreateRun:
    trial_id: str
    run_name: str
    params: dict[str, str]
    tags: dict[str, str]


@dataclass(frozen=True)
class LogMetrics:
    trial_id: str
    metrics: tuple[Metric, ...]


@dataclass(frozen=True)
class EndRun:
    trial_id: str
    status: str
    tags: dict[str, str]


@dataclass(frozen=True)
class ReopenRun:
    """A resumed trial's run is RUNNING again, without the tags of how it ended."""

    trial_id: str
    stale_tags: tuple[str, ...]


@dataclass(frozen=True)
class SetTags:
    trial_id: str
    tags: dict[str, str]


Op = CreateRun | LogMetrics | EndRun | ReopenRun | SetTags


@dataclass
class _RunWrites:
    """What one run gets in the next log_batch."""

    metrics: list[Metric] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)
    tags: list[RunTag] = field(default_factory=list)


class TrackingWriter:
    """Applies tracking operations on one background thread: each run's in submission
    order, different runs' concurrently up to `max_in_flight` requests."""

    def __init__(
        self,
        client: MlflowClient,
        experiment_id: str,
        max_in_flight: int = 1,
        max_queued: int = MAX_QUEUED_OPERATIONS,
    ) -> None:
        skip_run_links()
        self._client = client
        self._experiment_id = experiment_id
        # Each operation with the moment it was submitted, for the lag.
        self._queue: queue.Queue[tuple[Op | None, float]] = queue.Queue(max_queued)
        self.stats = WriterStats()
        self._warned_full = False
        self._run_ids: dict[str, str] = {}
        self._errors: list[str] = []
        self._pool = (
            ThreadPoolExecutor(max_in_flight, thread_name_prefix="tuner-mlflow-request")
            if max_in_flight > 1
            else None
        )
        self._thread = threading.Thread(target=self._loop, name="tuner-mlflow", daemon=True)
        self._thread.start()

    def submit(self, op: Op) -> None:
        """Queue a write; if the queue is full, wait for room: the tracking store is then
        slower than the trials report, and holding the driver back is better than
        losing points or memory. The wait is logged once and counted."""
        now = time.monotonic()
        try:
            self._queue.put_nowait((op, now))
            return
        except queue.Full:
            pass
        if not self._warned_full:
            self._warned_full = True
            logger.warning(
                "MLflow writes are %d operations behind: the sweep waits for the tracking "
                "store (see docs/performance.md on tracking server capacity)",
                self._queue.maxsize,
            )
        self._queue.put((op, now))
        self.stats.record_backpressure(time.monotonic() - now)

    def adopt(self, trial_id: str, run_id: str) -> None:
        """Write a restored trial's points into the run it already has."""
        self._run_ids[trial_id] = run_id

    def run_id(self, trial_id: str) -> str | None:
        """Child run of a trial; only meaningful after flush()."""
        return self._run_ids.get(trial_id)

    def flush(self) -> None:
        """Block until every submitted write is applied; raise if any failed."""
        self._queue.join()
        if self._errors:
            errors, self._errors = self._errors, []
            raise TrackingError(f"{len(errors)} MLflow write(s) failed; first: {errors[0]}")

    def close(self) -> None:
        self._queue.put((None, time.monotonic()))
        self._thread.join(timeout=60)
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            if batch[0][0] is not None:
                time.sleep(BATCH_WINDOW_S)
            # Take whatever else is waiting, so consecutive results share one request.
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            ops = [op for op, _ in batch]
            self._apply(ops)
            self.stats.record_window(
                [at for op, at in batch if op is not None],
                sum(len(op.metrics) for op in ops if isinstance(op, LogMetrics)),
                time.monotonic(),
            )
            for _ in batch:
                self._queue.task_done()
            if ops[-1] is None:
                return

    def _apply(self, batch: list[Op | None]) -> None:
        """Each run's writes of this window in order; runs side by side where the store
        serves requests in parallel. The window ends when every run's writes are done, so
        the next window's writes to a run come after this one's."""
        plans = list(self._plan(batch).values())
        if self._pool is None or len(plans) == 1:
            for actions in plans:
                self._in_order(actions)
            return
        wait([self._pool.submit(self._in_order, actions) for actions in plans])

    def _plan(self, batch: list[Op | None]) -> dict[str, list[Callable[[], None]]]:
        """One log_batch per run per window: its params, points and tags together (each
        MLflow request costs ~7 ms of this process's CPU on a SQLite store)."""
        plans: dict[str, list[Callable[[], None]]] = {}
        pending: dict[str, _RunWrites] = {}
        for op in batch:
            if op is None:
                continue
            actions = plans.setdefault(op.trial_id, [])
            writes = pending.setdefault(op.trial_id, _RunWrites())
            if isinstance(op, LogMetrics):
                writes.metrics.extend(op.metrics)
            elif isinstance(op, CreateRun):
                actions.append(partial(self._create, op))
                writes.params.extend(Param(key, value) for key, value in op.params.items())
            elif isinstance(op, SetTags):
                writes.tags.extend(RunTag(key, value) for key, value in op.tags.items())
            else:
                # The run's end (or reopening) comes after everything written before it.
                if isinstance(op, EndRun):
                    writes.tags.extend(RunTag(key, value) for key, value in op.tags.items())
                actions.append(partial(self._write, op.trial_id, pending.pop(op.trial_id)))
                actions.append(partial(self._change_status, op))
        for trial_id, writes in pending.items():
            plans[trial_id].append(partial(self._write, trial_id, writes))
        return plans

    def _in_order(self, actions: Sequence[Callable[[], None]]) -> None:
        for action in actions:
            self._guarded(action)

    def _guarded(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:  # a tracking failure must not kill the sweep; it is reported
            logger.warning("MLflow write failed: %s", exc)
            self._errors.append(f"{type(exc).__name__}: {exc}")

    def _create(self, op: CreateRun) -> None:
        run = self._client.create_run(self._experiment_id, run_name=op.run_name, tags=op.tags)
        self._run_ids[op.trial_id] = run.info.run_id

    def _write(self, trial_id: str, writes: _RunWrites) -> None:
        metrics, params, tags = writes.metrics, writes.params, writes.tags
        if not (metrics or params or tags):
            return
        run_id = self._run_ids[trial_id]
        while metrics or params or tags:
            # MLflow's log_batch limits: 100 params, 100 tags, 1000 entries in all.
            params_now, params = params[:MAX_PARAMS_PER_BATCH], params[MAX_PARAMS_PER_BATCH:]
            tags_now, tags = tags[:MAX_TAGS_PER_BATCH], tags[MAX_TAGS_PER_BATCH:]
            room = MAX_METRICS_PER_BATCH - len(params_now) - len(tags_now)
            metrics_now, metrics = metrics[:room], metrics[room:]
            self._client.log_batch(run_id, metrics=metrics_now, params=params_now, tags=tags_now)

    def _change_status(self, op: EndRun | ReopenRun) -> None:
        run_id = self._run_ids[op.trial_id]
        if isinstance(op, EndRun):
            self._client.set_terminated(run_id, status=op.status)
            return
        self._client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        for key in op.stale_tags:
            self._client.delete_tag(run_id, key)
