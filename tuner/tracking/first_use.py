"""Two sweeps started at once on a store nobody has used yet.

MLflow creates a SQLite store's tables, and migrates an old one, when a client first
opens it; a second process opening it meanwhile sees half a schema and fails. A lock
file beside the database makes that first opening one process at a time. Two sweeps of
one name may also both find no experiment and both create it: the second one's create
is refused, and it takes the first one's experiment.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from mlflow import MlflowClient
from mlflow.entities import Experiment, LifecycleStage
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

from tuner.tracking.blank_store import place_blank_store
from tuner.tracking.operations import TrackingError


def sqlite_database(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///` tracking URI; None for anything else."""
    if urlparse(tracking_uri).scheme != "sqlite":
        return None
    database = tracking_uri.removeprefix("sqlite:///")
    if not database or database == ":memory:":
        return None
    return Path(database).expanduser().resolve()


@contextmanager
def store_opened_alone(tracking_uri: str) -> Iterator[None]:
    """Hold the store's lock file (`mlflow.db.lock`) for SQLite; nothing for a server.
    A store not made yet starts as a copy of a blank one (tuner.tracking.blank_store).

    Open the first client of the process inside: MlflowClient() opens the store."""
    database = sqlite_database(tracking_uri)
    if database is None:
        yield
        return
    with open(database.with_name(f"{database.name}.lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            place_blank_store(database)
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


# MLflow 3's UI opens an experiment by its kind: without one it may guess GenAI and open
# on traces; tuner's sweeps are model training.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"


def experiment_id_for(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The id of experiment `name`, created if it does not exist yet, and marked as model
    training unless someone gave it a kind already."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if (deleted := deleted_line(experiment, client.tracking_uri)) is not None:
            raise TrackingError(deleted)  # MLflow refuses new runs there, with a traceback
        if EXPERIMENT_KIND_TAG not in (experiment.tags or {}):
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
        return str(experiment.experiment_id)
    try:
        return str(
            client.create_experiment(
                name,
                artifact_location=artifact_location,
                tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING},
            )
        )
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    experiment = client.get_experiment_by_name(name)  # another sweep created it just now
    if experiment is None:
        raise MlflowException(f"experiment {name!r} exists but cannot be read")
    return str(experiment.experiment_id)


def deleted_line(experiment: Experiment, tracking_uri: str) -> str | None:
    """What to do about a sweep whose experiment is in MLflow's trash (deleted in the UI,
    not yet emptied by `mlflow gc`); None for a live one. Its name stays taken meanwhile."""
    if experiment.lifecycle_stage != LifecycleStage.DELETED:
        return None
    number = experiment.experiment_id
    return (
        f"MLflow experiment {experiment.name!r} (id {number}) in {tracking_uri} is deleted: "
        f"with MLFLOW_TRACKING_URI={tracking_uri}, `mlflow experiments restore -x {number}` "
        f"brings it back, `mlflow gc --experiment-ids {number}` frees the name for good"
    )
