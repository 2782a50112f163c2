"""Everything MLflow: one parent run per sweep, one child run per trial.

Why not Ray's MLflowLoggerCallback: it makes one synchronous request per metric per
result, has no parent run (ray #19978) and ignores the tracking URI inside trainables
(ray #36257). Here the driver is the only writer (SQLite allows one), every write goes
through one background thread in submission order, and the metrics of consecutive
results are coalesced into `log_batch` requests, so Tune's event loop never waits on
the tracking store.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import urlparse
from urllib.request import urlopen

import cloudpickle
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run, RunStatus, RunTag
from ray.air.constants import EXPR_RESULT_FILE
from ray.exceptions import RayActorError, RayTaskError
from ray.tune import Callback
from ray.tune.result import AUTO_RESULT_KEYS

from tuner.searchers import EarlyStops
from tuner.spec import SweepSpec

logger = logging.getLogger(__name__)

MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limits
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
# How long the writer lets results pile up before writing them: one request per trial
# per window instead of one per result (a SQLite write costs ~5 ms). Only how soon a
# point shows in the UI depends on it; flush() still waits for every write.
BATCH_WINDOW_S = 0.25

# Tags a user (and `tuner best`) can filter on.
TAG_ROLE = "tuner.role"  # "sweep" or "trial"
TAG_PARENT = "mlflow.parentRunId"
TAG_TRIAL_ID = "tuner.trial_id"
TAG_STOPPED_EARLY = "tuner.stopped_early"
TAG_STOPPED_AT = "tuner.stopped_at_epoch"
TAG_CHECKPOINT = "tuner.checkpoint"
TAG_ERROR = "tuner.error"
TAG_STOP_REASON = "tuner.stop_reason"  # a trainable that ended itself early says why
TAG_BEST_RUN = "tuner.best_run_id"
TAG_BEST_TRIAL = "tuner.best_trial_id"
TAG_EXPERIMENT_PATH = "tuner.experiment_path"  # where Ray Tune keeps the sweep's state
TAG_SUBMISSION = "tuner.submission_id"  # the Ray job that drives the sweep, if any
TAG_RESTARTS = "tuner.restarts"  # times a trial restarted from its checkpoint
TAG_RESTART_REASON = "tuner.restart_reason"  # "preempted", "node lost" or "error"
TAG_KILLED = "tuner.killed"  # why a run was cut off (a Ctrl-C, a stop)
# Tags that describe how a trial's run ended; a resumed trial is no longer in that state.
_END_TAGS = (TAG_ERROR, TAG_KILLED)

# Ray's bookkeeping keys are not the user's metrics; "epoch" is the step, not a metric.
_NOT_METRICS = frozenset(AUTO_RESULT_KEYS) | {"epoch", "done", "trial_id", "experiment_tag"}


def metric_points(result: dict[str, Any]) -> dict[str, float]:
    """The user's numeric metrics in a Tune result."""
    return {
        key: float(value)
        for key, value in result.items()
        if key not in _NOT_METRICS
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    }


def result_step(result: dict[str, Any]) -> int:
    """The MLflow step of a result: the trainable's epoch, else Tune's iteration count."""
    return int(result.get("epoch", result.get("training_iteration", 0)))


class TrackingError(RuntimeError):
    """Writes to the tracking store failed; raised when the sweep flushes its tracking."""


def check_tracking_reachable(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when a server is down."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme in ("http", "https"):
        try:
            with urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout_s) as response:
                response.read()
        except (URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(
                f"MLflow tracking server {tracking_uri} unreachable: {reason}"
            ) from None
    elif parsed.scheme == "sqlite":
        database = Path(tracking_uri.removeprefix("sqlite:///"))
        if not database.parent.is_dir():
            raise TrackingError(
                f"tracking URI {tracking_uri}: folder {database.parent} does not exist"
            )


@dataclass(frozen=True)
class _CreateRun:
    trial_id: str
    run_name: str
    params: dict[str, str]
    tags: dict[str, str]


@dataclass(frozen=True)
class _LogMetrics:
    trial_id: str
    metrics: tuple[Metric, ...]


@dataclass(frozen=True)
class _EndRun:
    trial_id: str
    status: str
    tags: dict[str, str]


@dataclass(frozen=True)
class _ReopenRun:
    """A resumed trial's run is RUNNING again, without the tags of how it ended."""

    trial_id: str
    stale_tags: tuple[str, ...]


@dataclass(frozen=True)
class _SetTags:
    trial_id: str
    tags: dict[str, str]


_Op = _CreateRun | _LogMetrics | _EndRun | _ReopenRun | _SetTags


@dataclass
class _RunWrites:
    """What one run gets in the next log_batch."""

    metrics: list[Metric] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)
    tags: list[RunTag] = field(default_factory=list)


class TrackingWriter:
    """Applies tracking operations in order on one background thread."""

    def __init__(self, client: MlflowClient, experiment_id: str) -> None:
        self._client = client
        self._experiment_id = experiment_id
        self._queue: queue.Queue[_Op | None] = queue.Queue()
        self._run_ids: dict[str, str] = {}
        self._errors: list[str] = []
        self._thread = threading.Thread(target=self._loop, name="tuner-mlflow", daemon=True)
        self._thread.start()

    def submit(self, op: _Op) -> None:
        self._queue.put(op)

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
        self._queue.put(None)
        self._thread.join(timeout=60)

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            if batch[0] is not None:
                time.sleep(BATCH_WINDOW_S)
            # Take whatever else is waiting, so consecutive results share one request.
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._apply(batch)
            for _ in batch:
                self._queue.task_done()
            if batch[-1] is None:
                return

    def _apply(self, batch: list[_Op | None]) -> None:
        """One log_batch per run per window: its params, points and tags together (each
        MLflow request costs ~7 ms of this process's CPU on a SQLite store)."""
        pending: dict[str, _RunWrites] = {}
        for op in batch:
            if op is None:
                continue
            writes = pending.setdefault(op.trial_id, _RunWrites())
            if isinstance(op, _LogMetrics):
                writes.metrics.extend(op.metrics)
            elif isinstance(op, _CreateRun):
                self._guarded(partial(self._create, op))
                writes.params.extend(Param(key, value) for key, value in op.params.items())
            elif isinstance(op, _SetTags):
                writes.tags.extend(RunTag(key, value) for key, value in op.tags.items())
            else:
                # The run's end (or reopening) comes after everything written before it.
                if isinstance(op, _EndRun):
                    writes.tags.extend(RunTag(key, value) for key, value in op.tags.items())
                self._guarded(partial(self._write, op.trial_id, pending.pop(op.trial_id)))
                self._guarded(partial(self._change_status, op))
        for trial_id, writes in pending.items():
            self._guarded(partial(self._write, trial_id, writes))

    def _guarded(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:  # a tracking failure must not kill the sweep; it is reported
            logger.warning("MLflow write failed: %s", exc)
            self._errors.append(f"{type(exc).__name__}: {exc}")

    def _create(self, op: _CreateRun) -> None:
        run = self._client.create_run(self._experiment_id, run_name=op.run_name, tags=op.tags)
        self._run_ids[op.trial_id] = run.info.run_id

    def _write(self, trial_id: str, writes: _RunWrites) -> None:
        run_id = self._run_ids[trial_id]
        metrics, params, tags = writes.metrics, writes.params, writes.tags
        while metrics or params or tags:
            # MLflow's log_batch limits: 100 params, 100 tags, 1000 entries in all.
            params_now, params = params[:MAX_PARAMS_PER_BATCH], params[MAX_PARAMS_PER_BATCH:]
            tags_now, tags = tags[:MAX_TAGS_PER_BATCH], tags[MAX_TAGS_PER_BATCH:]
            room = MAX_METRICS_PER_BATCH - len(params_now) - len(tags_now)
            metrics_now, metrics = metrics[:room], metrics[room:]
            self._client.log_batch(run_id, metrics=metrics_now, params=params_now, tags=tags_now)

    def _change_status(self, op: _EndRun | _ReopenRun) -> None:
        run_id = self._run_ids[op.trial_id]
        if isinstance(op, _EndRun):
            self._client.set_terminated(run_id, status=op.status)
            return
        self._client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        for key in op.stale_tags:
            self._client.delete_tag(run_id, key)


@dataclass(frozen=True)
class ExistingRun:
    """A trial's child run from before a resume, and how far it got."""

    run_id: str
    last_step: int
    stale_tags: tuple[str, ...]  # end-of-run tags to drop if the trial runs again
    stopped_early: bool
    restarts: int


def child_runs(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list[Run]:
    """Every run under a sweep's parent run: one per trial."""
    runs: list[Run] = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG_PARENT}` = '{parent_run_id}'",
        max_results=50000,
    )
    return runs


def existing_trial_runs(
    client: MlflowClient, experiment_id: str, parent_run_id: str, metric: str
) -> dict[str, ExistingRun]:
    """The sweep's child runs by trial id, with the last step each logged."""
    existing = {}
    for run in child_runs(client, experiment_id, parent_run_id):
        tags = run.data.tags
        if TAG_TRIAL_ID not in tags:
            continue
        last_step = 0
        if run.info.status != RunStatus.to_string(RunStatus.FINISHED):
            # Only an unfinished trial can report again; finished ones cost no request.
            history = client.get_metric_history(run.info.run_id, metric)
            last_step = max((point.step for point in history), default=0)
        existing[tags[TAG_TRIAL_ID]] = ExistingRun(
            run_id=run.info.run_id,
            last_step=last_step,
            stale_tags=tuple(tag for tag in _END_TAGS if tag in tags),
            stopped_early=TAG_STOPPED_EARLY in tags,
            restarts=int(tags.get(TAG_RESTARTS, "0")),
        )
    return existing


class TrialTracker(Callback):  # type: ignore[misc]
    """Tune callback: each trial becomes a child run of the sweep's parent run."""

    def __init__(
        self,
        writer: TrackingWriter,
        parent_run_id: str,
        searched_names: Iterable[str],
        early_stops: EarlyStops,
        checkpoint_uri: Callable[[str], str],
    ) -> None:
        self._writer = writer
        self._parent_run_id = parent_run_id
        self._searched = list(searched_names)
        self._early_stops = early_stops
        self._checkpoint_uri = checkpoint_uri
        self._started: set[str] = set()
        self._open: set[str] = set()  # runs this driver created or reopened, not yet ended
        self._stop_reasons: dict[str, str] = {}
        self._last_step: dict[str, int] = {}
        self._existing: dict[str, ExistingRun] = {}
        self.restarts: dict[str, int] = {}  # trial id -> restarts from a checkpoint

    def continue_runs(self, existing: dict[str, ExistingRun]) -> None:
        """After a resume: trials Ray Tune restores keep their runs and logged steps."""
        self._existing = dict(existing)
        for trial_id, run in existing.items():
            self._writer.adopt(trial_id, run.run_id)
            self._started.add(trial_id)
            self._last_step[trial_id] = run.last_step
            if run.restarts:
                self.restarts[trial_id] = run.restarts
            if run.stopped_early:
                self._early_stops.add(trial_id)

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles callbacks into the experiment for restore; a restore brings its
        # own writer, and a thread cannot be pickled.
        return {**self.__dict__, "_writer": None}

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        # A restored trial runs again in the run it had: reopen that run once.
        existing = self._existing.pop(trial.trial_id, None)
        if existing is not None:
            self._writer.submit(_ReopenRun(trial.trial_id, existing.stale_tags))
            self._open.add(trial.trial_id)
            self._backfill(trial)
            return
        # Called again when a failed trial restarts: its run and params are already there.
        if trial.trial_id in self._started:
            return
        self._started.add(trial.trial_id)
        self._open.add(trial.trial_id)
        params = {name: _param_value(trial.config.get(name)) for name in self._searched}
        tags = {
            TAG_PARENT: self._parent_run_id,
            TAG_ROLE: "trial",
            TAG_TRIAL_ID: trial.trial_id,
        }
        self._writer.submit(_CreateRun(trial.trial_id, str(trial), params, tags))

    def _backfill(self, trial: Any) -> None:
        """Log the results a lost driver received but had not written yet.

        The trial resumes from the checkpoint in Ray's last experiment snapshot; the
        results before it are not reported again, but Ray kept them in the trial's
        result.json, uploaded with that same snapshot.
        """
        try:
            with trial.storage.storage_filesystem.open_input_stream(
                f"{trial.path}/{EXPR_RESULT_FILE}"
            ) as stream:
                lines = stream.read().decode().splitlines()
        except (OSError, AttributeError):  # no results saved yet: nothing was lost
            return
        for line in lines:
            try:
                result = json.loads(line)
            except json.JSONDecodeError:  # a line cut off by the crash
                continue
            if isinstance(result, dict):
                self.on_trial_result(0, [], trial, result)

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        step = result_step(result)
        # A trial restarted from an older checkpoint re-reports epochs: log each step once.
        if step <= self._last_step.get(trial.trial_id, 0):
            return
        self._last_step[trial.trial_id] = step
        if isinstance(result.get("stop_reason"), str):
            self._stop_reasons[trial.trial_id] = result["stop_reason"]
        timestamp = int(result.get("timestamp", time.time()) * 1000)
        # NaN and infinity are logged too (MLflow stores them): a diverging metric is
        # exactly what a user needs to see.
        metrics = tuple(
            Metric(key, value, timestamp, step) for key, value in metric_points(result).items()
        )
        if metrics:
            self._writer.submit(_LogMetrics(trial.trial_id, metrics))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        tags = self._checkpoint_tag(trial)
        if trial.trial_id in self._stop_reasons:
            tags[TAG_STOP_REASON] = self._stop_reasons[trial.trial_id][:5000]
        status = RunStatus.to_string(RunStatus.FINISHED)
        if trial.trial_id in self._early_stops:
            status = RunStatus.to_string(RunStatus.KILLED)
            tags[TAG_STOPPED_EARLY] = "asha"
            tags[TAG_STOPPED_AT] = str(self._last_step.get(trial.trial_id, 0))
        self._end(trial.trial_id, status, tags)

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial lost its worker and will restart from its last checkpoint."""
        restarts = self.restarts.get(trial.trial_id, 0) + 1
        self.restarts[trial.trial_id] = restarts
        tags = {TAG_RESTARTS: str(restarts), TAG_RESTART_REASON: restart_reason(trial)}
        self._writer.submit(_SetTags(trial.trial_id, tags))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        tags = self._checkpoint_tag(trial)
        tags[TAG_ERROR] = _error_summary(trial)
        self._end(trial.trial_id, RunStatus.to_string(RunStatus.FAILED), tags)

    def end_open_runs(self, reason: str) -> None:
        """Close the runs of trials cut off by an interrupt: KILLED, with the reason."""
        for trial_id in list(self._open):
            self._end(trial_id, RunStatus.to_string(RunStatus.KILLED), {TAG_KILLED: reason})

    def _end(self, trial_id: str, status: str, tags: dict[str, str]) -> None:
        self._open.discard(trial_id)
        self._writer.submit(_EndRun(trial_id, status, tags))

    def _checkpoint_tag(self, trial: Any) -> dict[str, str]:
        checkpoint = trial.checkpoint
        return {TAG_CHECKPOINT: self._checkpoint_uri(checkpoint.path)} if checkpoint else {}


def _param_value(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def restart_reason(trial: Any) -> str:
    """Why a trial is restarting: its node was preempted (drained), lost, or it raised."""
    try:
        with open(trial.pickled_error_file, "rb") as file:
            error = cloudpickle.load(file)
    except Exception:  # no readable error: say what we know
        return "error"
    if isinstance(error, RayTaskError):
        error = error.as_instanceof_cause()
    if isinstance(error, RayActorError):
        return "preempted" if error.preempted else "node lost"
    return "error"


def _error_summary(trial: Any) -> str:
    """Last line of the trial's traceback: the exception, which is what a user needs first."""
    text = ""
    try:
        # Ray writes the error to the driver's staging folder first and syncs it to
        # storage later, so at this moment only the local file is certain to exist.
        if trial.error_file and Path(trial.error_file).is_file():
            text = Path(trial.error_file).read_text(errors="replace")
    except OSError:  # unreadable: the run's FAILED status still says what matters
        logger.debug("could not read error of trial %s", trial.trial_id, exc_info=True)
    lines = [line for line in str(text).splitlines() if line.strip()]
    return (lines[-1] if lines else "trial failed")[:5000]


def find_sweep_run(
    client: MlflowClient, sweep: str, tag: str, value: str
) -> tuple[str, Run] | None:
    """(experiment id, parent run) of the sweep run whose `tag` is `value`, if any."""
    experiment = client.get_experiment_by_name(sweep)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{TAG_ROLE}` = 'sweep' and tags.`{tag}` = '{value}'",
        max_results=1,
    )
    return (experiment.experiment_id, runs[0]) if runs else None


class SweepRun:
    """The sweep's parent run: created before Ray starts, closed with the best trial."""

    def __init__(self, client: MlflowClient, experiment_id: str, run_id: str) -> None:
        self.client = client
        self.experiment_id = experiment_id
        self.run_id = run_id

    @classmethod
    def start(cls, spec: SweepSpec, spec_path: Path | None, tracking_uri: str) -> SweepRun:
        client = MlflowClient(tracking_uri)
        experiment = client.get_experiment_by_name(spec.name)
        experiment_id = (
            experiment.experiment_id if experiment else client.create_experiment(spec.name)
        )
        tags = {
            TAG_ROLE: "sweep",
            "tuner.trainable": spec.trainable,
            "tuner.searcher": spec.searcher_label,
            "tuner.scheduler": spec.scheduler.kind,
            "tuner.metric": spec.metric,
            "tuner.mode": spec.mode,
        }
        run = client.create_run(experiment_id, run_name=spec.name, tags=tags)
        sweep = cls(client, experiment_id, run.info.run_id)
        params = {
            "num_samples": str(spec.num_samples),
            "searcher": spec.searcher.model_dump_json(),
            "scheduler": spec.scheduler.model_dump_json(),
            **{f"config.{key}": _param_value(value) for key, value in spec.config.items()},
        }
        client.log_batch(sweep.run_id, params=[Param(k, v) for k, v in params.items()])
        if spec_path is not None:
            client.log_artifact(sweep.run_id, str(spec_path), artifact_path="spec")
        return sweep

    @classmethod
    def find(cls, spec: SweepSpec, tracking_uri: str, experiment_path: str) -> SweepRun | None:
        """The parent run of the sweep kept at `experiment_path`; None if none exists."""
        client = MlflowClient(tracking_uri)
        found = find_sweep_run(client, spec.name, TAG_EXPERIMENT_PATH, experiment_path)
        if found is None:
            return None
        experiment_id, run = found
        return cls(client, experiment_id, run.info.run_id)

    def reopen(self) -> None:
        """A resumed sweep's run is RUNNING again and counts its resumes."""
        run = self.client.get_run(self.run_id)
        resumes = int(run.data.tags.get("tuner.resumes", "0")) + 1
        self.client.update_run(self.run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        self.set_tags({"tuner.resumes": str(resumes)})

    def set_tags(self, tags: dict[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    @property
    def status(self) -> str:
        return str(self.client.get_run(self.run_id).info.status)

    def record_best(
        self, metric: str, value: float, params: dict[str, Any], trial_id: str, run_id: str | None
    ) -> None:
        tags = [RunTag(TAG_BEST_TRIAL, trial_id)]
        if run_id:
            tags.append(RunTag(TAG_BEST_RUN, run_id))
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(f"best_{metric}", value, int(time.time() * 1000), 0)],
            params=[Param(f"best.{k}", _param_value(v)) for k, v in params.items()],
            tags=tags,
        )

    def record_test(self, metrics: dict[str, float], best_run_id: str) -> None:
        """The best model's test-split score, on the parent run and on the best trial's run."""
        if not metrics:
            return
        now = int(time.time() * 1000)
        points = [Metric(key, value, now, 0) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=points)
        self.client.log_batch(best_run_id, metrics=points)

    def finish(self, status: int, tags: dict[str, str] | None = None) -> None:
        """Close the parent run; `status` is a RunStatus value (FINISHED, FAILED, KILLED)."""
        if tags:
            self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        self.client.set_terminated(self.run_id, status=RunStatus.to_string(status))
