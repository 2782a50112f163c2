"""Everything MLflow: one parent run per sweep, one child run per trial.

Why not Ray's MLflowLoggerCallback: it makes one synchronous request per metric per
result, has no parent run (ray #19978) and ignores the tracking URI inside trainables
(ray #36257). Here the driver is the only writer (SQLite allows one), every write goes
through one background thread in submission order, and the metrics of consecutive
results are coalesced into `log_batch` requests, so Tune's event loop never waits on
the tracking store.

A tracking server answers each request in tens of milliseconds, and serves several at
once: there the writes of different runs go out in parallel (a bounded number in
flight), each run's own writes still in order, the runs taking turns
(tracking.run_turns). A SQLite file takes one writer at a time;
in a long sweep its SQL runs in a child process (tracking.client_process), so that it
does not take the GIL from Tune's loop.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag

from tuner.tracking.client_process import ClientProcess
from tuner.tracking.client_settings import (
    SERVER_REQUESTS_IN_FLIGHT,
    bound_mlflow_retries,
    in_process_sql,
    requests_in_flight,
    skip_run_links,
    store_unavailable,
)
from tuner.tracking.datasets import dataset_input
from tuner.tracking.journal import DEFAULT_JOURNAL_DIR, save_journal
from tuner.tracking.operations import (
    CopyOwnLogs,
    CreateRun,
    EndRun,
    LogMetrics,
    Op,
    ReopenRun,
    SetTags,
    TrackingError,
    TrackingOffline,
)
from tuner.tracking.own_logs import copy_own_logs
from tuner.tracking.run_turns import RunTurns
from tuner.tracking.writer_stats import WriterStats

# Re-exported: the writer's operations and settings, where its callers first found them.
__all__ = [
    "SERVER_REQUESTS_IN_FLIGHT",
    "CreateRun",
    "EndRun",
    "LogMetrics",
    "Op",
    "ReopenRun",
    "SetTags",
    "TrackingError",
    "TrackingOffline",
    "TrackingWriter",
    "requests_in_flight",
]

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
# Sweeps of this many trials write a database store from a child process. Its start (an
# interpreter, MLflow's imports, the store's schema check) costs 1-2 s of CPU, which a
# dozen trials of seconds each would feel (measured: 12 trials took 1.8 s longer) and
# never win back; a trial's writes in the driver cost it ~25 ms of CPU under the GIL.
WRITER_PROCESS_FROM_TRIALS = 100


@dataclass
class _RunWrites:
    """What one run gets in the next log_batch, and the operations it carries."""

    metrics: list[Metric] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)
    tags: list[RunTag] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)


@dataclass(frozen=True)
class _Step:
    """One request (or a few, past MLflow's batch limits) and the operations it writes:
    if the store is gone, those go to the journal instead."""

    action: Callable[[], None]
    ops: tuple[Op, ...]


class TrackingWriter:
    """Applies tracking operations in the background: each run's in submission order,
    different runs' concurrently up to `max_in_flight` requests."""

    def __init__(
        self,
        client: MlflowClient | ClientProcess,
        experiment_id: str,
        max_in_flight: int = 1,
        max_queued: int = MAX_QUEUED_OPERATIONS,
        journal_dir: Path | None = None,
    ) -> None:
        skip_run_links()
        bound_mlflow_retries()
        self._client = client
        self._experiment_id = experiment_id
        # Each operation with the moment it was submitted, for the lag.
        self._queue: queue.Queue[tuple[Op | None, float]] = queue.Queue(max_queued)
        self.stats = WriterStats()
        self._warned_full = False
        self._run_ids: dict[str, str] = {}
        self._errors: list[str] = []
        self._lock = threading.Lock()
        self._offline: str | None = None  # why the store stopped answering, once it did
        self._unwritten: list[Op] = []
        self._journal_dir = journal_dir or DEFAULT_JOURNAL_DIR
        self._pool = (
            ThreadPoolExecutor(max_in_flight, thread_name_prefix="tuner-mlflow-request")
            if max_in_flight > 1
            else None
        )
        # As many again as the queue holds may wait in the runs' turns.
        self._turns = RunTurns(self._write_run, self._pool, max_queued)
        self._thread = threading.Thread(target=self._loop, name="tuner-mlflow", daemon=True)
        self._thread.start()

    @classmethod
    def for_store(cls, client: MlflowClient, experiment_id: str, trials: int) -> TrackingWriter:
        """A writer for the sweep of `trials` trials at the store `client` reaches: a
        database's SQL run by a child process (tracking.client_process) where the
        trials are many, a server's requests several at a time."""
        uri = client.tracking_uri
        if in_process_sql(uri) and trials >= WRITER_PROCESS_FROM_TRIALS:
            try:
                return cls(ClientProcess(uri), experiment_id)
            except OSError as exc:  # no process to be had: the driver writes, as it can
                logger.warning("MLflow writes stay in the driver (no writer process: %s)", exc)
        return cls(client, experiment_id, requests_in_flight(uri))

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
        """Block until every submitted write is applied or journaled; raise if any failed,
        or if the store stopped answering (then saying where the journal is)."""
        self._queue.join()
        with self._lock:
            unwritten, self._unwritten = self._unwritten, []
        if unwritten:
            path = save_journal(
                self._journal_dir, self._client.tracking_uri, self._experiment_id,
                dict(self._run_ids), unwritten,
            )  # fmt: skip
            raise TrackingOffline(
                f"MLflow at {self._client.tracking_uri} stopped answering ({self._offline}); "
                f"{len(unwritten)} tracking writes of "
                f"{len({op.trial_id for op in unwritten})} trials are saved in {path}: "
                f"`tuner sync {path}` writes them once it answers again"
            )
        if self._errors:
            errors, self._errors = self._errors, []
            raise TrackingError(f"{len(errors)} MLflow write(s) failed; first: {errors[0]}")

    def close(self) -> None:
        self._queue.put((None, time.monotonic()))
        self._thread.join(timeout=60)
        if self._pool is not None:
            self._pool.shutdown(wait=False)
        if isinstance(self._client, ClientProcess):
            self._client.close()

    def _loop(self) -> None:
        while True:
            self._turns.wait_for_room()
            batch = [self._queue.get()]
            if batch[0][0] is not None:
                time.sleep(BATCH_WINDOW_S)
            # Take whatever else is waiting, so consecutive results share one request.
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._turns.add((op.trial_id, (op, at)) for op, at in batch if op is not None)
            if any(op is None for op, _ in batch):
                self._queue.task_done()  # the end: once every write before it is done
                self._queue.join()
                return

    def _write_run(self, trial_id: str, entries: list[tuple[Op, float]]) -> None:
        """A run's turn (tracking.run_turns): everything it has pending, in order."""
        ops = [op for op, _ in entries]
        try:
            self._in_order(self._plan(trial_id, ops))
            points = sum(len(op.metrics) for op in ops if isinstance(op, LogMetrics))
            self.stats.record_writes([at for _, at in entries], points, time.monotonic())
        finally:  # a bug here must not leave flush() waiting forever
            for _ in entries:
                self._queue.task_done()

    def _plan(self, trial_id: str, ops: list[Op]) -> list[_Step]:
        """A run's turn as steps: one log_batch with its params, points and tags together
        (each MLflow request costs ~7 ms of this process's CPU on a SQLite store), its run
        made before and its status changed after."""
        steps: list[_Step] = []
        writes = _RunWrites()
        # The user's own logs (tracking.own_logs) go in after the batch, before the end:
        # no request of their own where there are none.
        copies: list[_Step] = []
        for op in ops:
            if isinstance(op, CopyOwnLogs):
                copies.append(_Step(partial(self._copy_own_logs, op), (op,)))
                continue
            writes.ops.append(op)
            if isinstance(op, LogMetrics):
                writes.metrics.extend(op.metrics)
            elif isinstance(op, CreateRun):
                steps.append(_Step(partial(self._create, op), (op,)))
                writes.params.extend(Param(key, value) for key, value in op.params.items())
            elif isinstance(op, SetTags):
                writes.tags.extend(RunTag(key, value) for key, value in op.tags.items())
            else:
                # The run's end (or reopening) comes after everything written before it.
                if isinstance(op, EndRun):
                    writes.tags.extend(RunTag(key, value) for key, value in op.tags.items())
                steps.append(_Step(partial(self._write, trial_id, writes), tuple(writes.ops)))
                steps.extend(copies)
                steps.append(_Step(partial(self._change_status, op), (op,)))
                writes, copies = _RunWrites(), []
        if writes.ops:
            steps.append(_Step(partial(self._write, trial_id, writes), tuple(writes.ops)))
        return steps + copies

    def _in_order(self, steps: Sequence[_Step]) -> None:
        """A run's steps in order. Once the store stops answering, a step and every later
        one wait in the journal: retrying each would hold the sweep for minutes."""
        for index, step in enumerate(steps):
            if self._offline is None:
                try:
                    step.action()
                    continue
                except Exception as exc:  # a tracking failure must not kill the sweep
                    if not store_unavailable(exc):
                        logger.warning("MLflow write failed: %s", exc)
                        self._errors.append(f"{type(exc).__name__}: {exc}")
                        continue
                    self._go_offline(exc)
            self._keep_unwritten(steps[index:])
            return

    def _go_offline(self, exc: Exception) -> None:
        with self._lock:
            if self._offline is None:
                self._offline = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                logger.warning("MLflow stopped answering; its writes wait in a journal: %s", exc)

    def _keep_unwritten(self, steps: Sequence[_Step]) -> None:
        seen: set[int] = set()
        ops = []
        for step in steps:
            for op in step.ops:
                if id(op) not in seen:
                    seen.add(id(op))
                    ops.append(op)
        with self._lock:
            self._unwritten.extend(ops)

    def _create(self, op: CreateRun) -> None:
        if op.trial_id in self._run_ids:
            return  # replayed from a journal: the run was made, its params were not
        run = self._client.create_run(self._experiment_id, run_name=op.run_name, tags=op.tags)
        self._run_ids[op.trial_id] = run.info.run_id
        if op.dataset is not None:
            self._client.log_inputs(run.info.run_id, datasets=[dataset_input(op.dataset)])

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

    def _copy_own_logs(self, op: CopyOwnLogs) -> None:
        def write(params: list[Param], tags: list[RunTag], metrics: list[Metric]) -> None:
            self._write(op.trial_id, _RunWrites(metrics=metrics, params=params, tags=tags))

        copy_own_logs(self._client, self._run_ids[op.trial_id], op.location, write)

    def _change_status(self, op: EndRun | ReopenRun) -> None:
        run_id = self._run_ids[op.trial_id]
        if isinstance(op, EndRun):
            self._client.set_terminated(run_id, status=op.status)
            return
        self._client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        for key in op.stale_tags:
            self._client.delete_tag(run_id, key)
