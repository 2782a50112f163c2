"""MLflow calls a trainable makes itself, carried into its trial's run.

Training code adapted from a single-run script calls `mlflow.log_param`,
`mlflow.log_metric` and `mlflow.log_artifact` itself. The sweep's store has one writer,
the driver (SQLite takes one), so the trial's process does not write it: during the
trial's function MLflow's fluent API points at a SQLite store of the trial's own, in a
temporary folder. When the function ends (returns, fails, or is stopped by the
scheduler) what it logged there (params, tags, every metric point, the artifacts) is
put in the trial's folder of the sweep's storage (S3 on a cluster) and the driver's
tracking writer copies it into the trial's run (tracking.own_logs), before the run ends.

A `pending` marker is written as soon as a report shows that the function has an MLflow
run: a trial the scheduler stops ends on the driver before its function has unwound,
and the marker tells the writer to wait for what follows. Code that points MLflow
elsewhere itself (`mlflow.set_tracking_uri`) keeps its run there; the trial says so once.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tuner.tracking.blank_store import place_blank_store
from tuner.tracking.own_logs import ARTIFACTS, DONE, FOLDER, PAYLOAD, PENDING

# What MLflow's fluent API reads from the environment to pick a store, experiment or run:
# a user's shell may name the sweep's own server, or a run of another process.
_STORE_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME",
                    "MLFLOW_EXPERIMENT_ID")  # fmt: skip
# Set while the logs are staged (no progress bar per artifact in the trial's output).
_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
_told = False  # once per worker process: a reused worker runs many trials


def fluent_run_id() -> str | None:
    """The run MLflow's fluent API (`mlflow.log_metric`) last used in this thread, if
    the user's code imported MLflow at all (tuner imports none into a worker)."""
    fluent: Any = sys.modules.get("mlflow.tracking.fluent")
    if fluent is None:
        return None
    active = fluent.active_run()
    if active is not None:
        return str(active.info.run_id)
    last: Any = getattr(fluent, "_last_active_run_id", None)  # private: read if there
    value = last.get() if hasattr(last, "get") else None
    return value if isinstance(value, str) else None


class OwnMlflow:
    """One call of a trial's function: its MLflow store, and where its logs go."""

    def __init__(self, session: Any) -> None:
        """`session`: the trial's Ray session, whose storage gets the logs; None keeps
        MLflow where it points (a worker of a multi-worker trial): told, not carried."""
        self._before = fluent_run_id()
        self._pending = False
        self._saved: dict[str, str | None] = {}
        self._folder = self._uri = self._destination = ""
        self._experiment: str | None = None
        self._filesystem: Any = None
        if session is None:
            return
        self._folder = tempfile.mkdtemp(prefix="tuner-own-mlflow-")
        self._uri = f"sqlite:///{self._folder}/mlflow.db"
        self._saved = {name: os.environ.pop(name, None) for name in _STORE_VARIABLES}
        self._saved[_PROGRESS_BAR] = os.environ.get(_PROGRESS_BAR)
        os.environ["MLFLOW_TRACKING_URI"] = self._uri
        # An experiment the module set at import (`mlflow.set_experiment`) is one of
        # another store: its id would not exist in this one. Runs go to its default.
        self._experiment = _swap_experiment(None)
        if "mlflow" in sys.modules:  # imported by the user's module: a blank store's copy,
            place_blank_store(Path(self._folder) / "mlflow.db")  # not 2 s of migrations
        storage = session.storage
        self._filesystem = storage.storage_filesystem
        self._destination = f"{storage.trial_fs_path}/{FOLDER}/{uuid.uuid4().hex[:12]}"

    def note_report(self) -> None:
        """At each report: once the function has a run of its own, say so in storage."""
        if self._pending or self._filesystem is None:
            return
        if fluent_run_id() in (None, self._before):
            return
        self._pending = True
        try:
            self._mark(PENDING)
        except OSError as exc:  # the trial trains on; its logs may miss the run
            _warn(f"could not mark its MLflow logs as coming ({exc})")

    def _mark(self, name: str) -> None:
        assert self._filesystem is not None
        self._filesystem.create_dir(self._destination, recursive=True)
        with self._filesystem.open_output_stream(f"{self._destination}/{name}") as out:
            out.write(b"")

    def finish(self) -> None:
        """After the function: its run ended, its logs in storage, the environment back."""
        try:
            run_id = fluent_run_id()
            carried = False
            if run_id is not None and run_id != self._before:
                import mlflow

                uri = mlflow.get_tracking_uri()
                if mlflow.active_run() is not None:
                    mlflow.end_run()
                carried = self._filesystem is not None and uri == self._uri
                if carried:
                    self._carry()
                else:
                    _tell(run_id, uri)
            if carried or self._pending:  # written last: the writer takes it, or stops waiting
                self._mark(DONE)
        except Exception as exc:  # the trial's own outcome stands: the logs are extra
            _warn(f"its own MLflow logs did not reach the sweep's storage ({exc})")
        finally:
            if self._folder:
                _swap_experiment(self._experiment)
            for name, value in self._saved.items():
                os.environ.pop(name, None)
                if value is not None:
                    os.environ[name] = value
            if self._folder:
                shutil.rmtree(self._folder, ignore_errors=True)

    def _carry(self) -> None:
        """Every run the function made in its store, merged: params, tags other than
        MLflow's own, each metric's points, the artifacts (a second run's under its name)."""
        from mlflow import MlflowClient

        os.environ[_PROGRESS_BAR] = "false"  # put back by finish()

        client = MlflowClient(self._uri)
        payload: dict[str, Any] = {"params": {}, "tags": {}, "metrics": []}
        staged = os.path.join(self._folder, "staged")
        experiments = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(experiments, order_by=["attributes.start_time ASC"])
        for index, run in enumerate(runs):
            run_id = run.info.run_id
            payload["params"].update(run.data.params)
            own_tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
            payload["tags"].update(own_tags)
            for key in run.data.metrics:
                for point in client.get_metric_history(run_id, key):
                    payload["metrics"].append([key, point.value, point.timestamp, point.step])
            if client.list_artifacts(run_id):
                below = ARTIFACTS if index == 0 else f"{ARTIFACTS}/{run.info.run_name or run_id}"
                target = os.path.join(staged, below)
                os.makedirs(target, exist_ok=True)
                client.download_artifacts(run_id, "", target)
                # MLflow kept them in the trial's working folder (./mlruns): moved, not copied.
                local = urlparse(run.info.artifact_uri)
                if local.scheme in ("", "file"):
                    shutil.rmtree(local.path, ignore_errors=True)
        os.makedirs(staged, exist_ok=True)
        with open(os.path.join(staged, PAYLOAD), "w", encoding="utf-8") as out:
            json.dump(payload, out)
        import pyarrow.fs

        assert self._filesystem is not None
        self._filesystem.create_dir(self._destination, recursive=True)
        pyarrow.fs.copy_files(
            staged, self._destination, pyarrow.fs.LocalFileSystem(), self._filesystem
        )


def _swap_experiment(experiment_id: str | None) -> str | None:
    """Set the fluent API's active experiment (private: set where it exists), returning
    the one it had."""
    fluent: Any = sys.modules.get("mlflow.tracking.fluent")
    if fluent is None or not hasattr(fluent, "_active_experiment_id"):
        return None
    had: str | None = fluent._active_experiment_id
    fluent._active_experiment_id = experiment_id
    return had


def _warn(problem: str) -> None:
    print(f"warning: the trial {problem}", file=sys.stderr, flush=True)


def _tell(run_id: str, uri: str) -> None:
    global _told
    if _told:
        return
    _told = True
    print(
        f"warning: the trainable logged to MLflow itself (run {run_id} in {uri}), not to "
        "the sweep's tracking store: report values with ray.tune.report, or leave "
        "MLflow's tracking URI as it is in a trial, to have them in the trial's run",
        file=sys.stderr,
        flush=True,
    )
