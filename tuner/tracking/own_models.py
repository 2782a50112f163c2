"""The models a trial's function logged itself, re-created in the sweep's store.

`mlflow.pytorch.log_model(model, name="model")` in a trial's function makes an MLflow 3
logged model in the trial's own store (tuner.engine.own_mlflow): its files under the
model's artifact location, its params, tags and metrics in the store's tables, and the
run's output that names it. The tracking writer makes each again in the sweep's store,
from the sweep's storage (tuner.tracking.own_logs): a logged model of the trial's run,
its files uploaded, its MLmodel file naming its new id and run, READY, and the run's
output at the step the function logged it. `mlflow.pytorch.load_model("models:/<id>")`
then loads it from the sweep's MLflow, and the run's page lists it. A model the
function registered (`registered_model_name=`) is a new version of that registered
model in the sweep's registry, as each run of the script made one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)
_GLOBAL_URI = threading.Lock()  # the one process-wide tracking URI, lent while registering

MLMODEL = "MLmodel"


@dataclass(frozen=True)
class ModelEntry:
    """One logged model of a part, as the trial's process wrote it."""

    model_id: str
    name: str
    model_type: str | None
    source_run_id: str
    location: str
    step: int
    params: dict[str, str]
    tags: dict[str, str]
    registered_as: list[str]


def model_entry(entry: dict[str, Any]) -> ModelEntry:
    """A part's model, its shape checked before anything is written."""
    model_type = entry["model_type"]
    return ModelEntry(
        model_id=str(entry["model_id"]),
        name=str(entry["name"]),
        model_type=None if model_type is None else str(model_type),
        source_run_id=str(entry["source_run_id"]),
        location=str(entry["location"]),
        step=int(entry["step"]),
        params={str(k): str(v) for k, v in dict(entry["params"]).items()},
        tags={str(k): str(v) for k, v in dict(entry["tags"]).items()},
        registered_as=[str(name) for name in entry.get("registered_as", [])],
    )


def create_model(
    client: Any, run_id: str, experiment_id: str, model: ModelEntry, files: str
) -> str:
    """`model` as a logged model of the run `run_id`, its files from the folder `files`
    (staged: its MLmodel is rewritten there); the new model's id."""
    from mlflow.entities import LoggedModelOutput

    logged = client.create_logged_model(
        experiment_id,
        name=model.name,
        source_run_id=run_id,
        params=model.params or None,
        tags=model.tags or None,
        model_type=model.model_type,
    )
    new_id = str(logged.model_id)
    if os.path.isdir(files):
        _rename_in_mlmodel(os.path.join(files, MLMODEL), model, new_id, run_id,
                           str(logged.artifact_location))  # fmt: skip
        client.log_model_artifacts(new_id, files)
    client.finalize_logged_model(new_id, "READY")
    client.log_outputs(run_id, [LoggedModelOutput(new_id, step=model.step)])
    for name in model.registered_as:
        _register(client, name, new_id, run_id)
    return new_id


def _register(client: Any, name: str, model_id: str, run_id: str) -> None:
    """A new version of the registered model `name`, made if the registry has none: a
    registry that refuses is a warning, since the model itself is in the run."""
    from mlflow.exceptions import MlflowException

    try:
        try:
            client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        with _lookups_at(client.tracking_uri):
            client.create_model_version(
                name, f"models:/{model_id}", run_id=run_id, model_id=model_id
            )
    except MlflowException as exc:
        logger.warning("the model %s a trial logged was not registered as %r: %s",
                       model_id, name, exc.message)  # fmt: skip


def _rename_in_mlmodel(
    path: str, model: ModelEntry, new_id: str, run_id: str, location: str
) -> None:
    """The MLmodel file names the model's id, run and artifact location in the trial's
    store (`model_id`, `model_uuid`, `run_id`, `artifact_path`): the new ones instead."""
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as stream:
        text = stream.read()
    if model.location:
        text = text.replace(model.location, location)
    text = text.replace(model.model_id, new_id)
    if model.source_run_id:
        text = text.replace(model.source_run_id, run_id)
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(text)


@contextlib.contextmanager
def _lookups_at(uri: str) -> Iterator[None]:
    """MLflow's SQL registry reads a `models:/<id>` source's model through the process's
    global tracking URI (`MlflowClient()`), not the registering client's: the driver's
    is none (a writer process sets its own, tracking.client_process). Lent for the call,
    the private value alone: `set_tracking_uri` would also export it to the environment
    of processes started meanwhile."""
    from mlflow.tracking._tracking_service import utils as mlflow_utils

    utils: Any = mlflow_utils  # its private global, typed None
    with _GLOBAL_URI:
        had = utils._tracking_uri
        utils._tracking_uri = uri
        try:
            yield
        finally:
            utils._tracking_uri = had
