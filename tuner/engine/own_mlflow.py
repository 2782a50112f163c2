"""MLflow calls a trainable makes itself, carried into its trial's run.

Training code adapted from a single-run script calls `mlflow.log_param`,
`mlflow.log_metric` and `mlflow.log_artifact` itself. The sweep's store has one writer,
the driver (SQLite takes one), so the trial's process does not write it: during the
trial's function MLflow's fluent API points at a SQLite store of the trial's own, in a
temporary folder. Before each report reaches Ray, and when the function ends, what it
logged there since (params, tags, metric points, artifact files) goes to the trial's
folder of the sweep's storage (S3 on a cluster) as one part
(tuner.engine.own_mlflow_parts); the driver's tracking writer copies the parts into the
trial's run before the run ends (tuner.tracking.own_logs). Code that points MLflow
elsewhere itself (`mlflow.set_tracking_uri`) keeps its run there; the trial says so once.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from tuner.engine.hidden_output import hidden_secrets
from tuner.engine.own_mlflow_parts import NewLogs, remove_local_artifacts, write_part
from tuner.tracking.blank_store import place_blank_store
from tuner.tracking.own_logs import FOLDER

# What MLflow's fluent API reads from the environment to pick a store, experiment or run:
# a user's shell may name the sweep's own server, or a run of another process.
_STORE_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME",
                    "MLFLOW_EXPERIMENT_ID")  # fmt: skip
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
    """One call of a trial's function: its MLflow store, and the parts sent from it."""

    def __init__(self, session: Any) -> None:
        """`session`: the trial's Ray session, whose storage gets the logs; None keeps
        MLflow where it points (a worker of a multi-worker trial): told, not carried."""
        self._before = fluent_run_id()
        self._saved: dict[str, str | None] = {}
        self._folder = self._uri = self._destination = ""
        self._experiment: str | None = None
        self._filesystem: Any = None
        self._parts = 0
        if session is None:
            return
        self._folder = tempfile.mkdtemp(prefix="tuner-own-mlflow-")
        database = Path(self._folder) / "mlflow.db"
        self._uri = f"sqlite:///{database}"
        self._logs = NewLogs(database)
        self._saved = {name: os.environ.pop(name, None) for name in _STORE_VARIABLES}
        os.environ["MLFLOW_TRACKING_URI"] = self._uri
        # An experiment the module set at import (`mlflow.set_experiment`) is one of
        # another store: its id would not exist in this one. Runs go to its default.
        self._experiment = _swap_experiment(None)
        if "mlflow" in sys.modules:  # imported by the user's module: a blank store's copy,
            place_blank_store(database)  # not 2 s of migrations
        storage = session.storage
        self._filesystem = storage.storage_filesystem
        self._destination = f"{storage.trial_fs_path}/{FOLDER}/{uuid.uuid4().hex[:12]}"

    def note_report(self) -> None:
        """Before each report reaches Ray: what the function logged since the last one
        goes to storage, so a trial stopped at this report has it all there. Read
        whichever API wrote it: `MlflowClient()` (a logger's) finds the store as the
        fluent API does, through the environment."""
        self._send()

    def finish(self) -> None:
        """After the function: its run ended, the rest sent, the environment back."""
        try:
            run_id = fluent_run_id()
            if run_id is not None and run_id != self._before:
                import mlflow

                uri = mlflow.get_tracking_uri()
                if uri != self._uri:
                    _tell(run_id, uri)
                elif mlflow.active_run() is not None:
                    mlflow.end_run()  # also flushes what it logged asynchronously
            self._send()
            if self._filesystem is not None:
                remove_local_artifacts(self._logs.artifact_folders)
        finally:
            for name, value in self._saved.items():
                os.environ.pop(name, None)
                if value is not None:
                    os.environ[name] = value
            if self._folder:
                _swap_experiment(self._experiment)
                shutil.rmtree(self._folder, ignore_errors=True)

    def _send(self) -> None:
        if self._filesystem is None:  # a failure said so once: the trial trains on
            return
        try:
            part = self._logs.next_part()
            if part:
                self._parts += 1
                destination = f"{self._destination}/{self._parts:05d}"
                staging = Path(self._folder) / "part"
                write_part(part, self._filesystem, destination, staging, hidden_secrets())
        except Exception as exc:  # the trial's own outcome stands: the logs are extra
            self._filesystem = None
            print(
                f"warning: the trial's own MLflow logs stop reaching its run here ({exc})",
                file=sys.stderr,
                flush=True,
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
