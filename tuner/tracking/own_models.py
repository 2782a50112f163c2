"""The models a trial's function logged itself, re-created in the sweep's store.

`mlflow.pytorch.log_model(model, name="model")` in a trial's function makes an MLflow 3
logged model in the trial's own store (tuner.engine.own_mlflow): its files under the
model's artifact location, its params, tags and metrics in the store's tables, and the
run's output that names it. The tracking writer makes each again in the sweep's store,
from the sweep's storage (tuner.tracking.own_logs): a logged model of the trial's run,
its files uploaded, its MLmodel file naming its new id and run, READY, and the run's
output at the step the function logged it. `mlflow.pytorch.load_model("models:/<id>")`
then loads it from the sweep's MLflow, and the run's page lists it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

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
    return new_id


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
