"""A model a trial's function logs itself (`mlflow.pytorch.log_model`), as the script it
came from did: an MLflow 3 logged model of the trial's own store, which the user did
not find in the sweep's MLflow. Now it is read from that store with its files, params,
tags and metrics, left in the sweep's storage with the part it came in, and made again
by the tracking writer (in its own process, as a long sweep has it) as a logged model
of the trial's run, which `mlflow.pytorch.load_model("models:/<id>")` loads from the
sweep's store, and registered there under the name the function gave."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import mlflow
import mlflow.pytorch
import numpy
import pyarrow.fs
import pytest
import torch
import yaml
from mlflow import MlflowClient
from mlflow.entities import RunStatus
from mlflow.tracking._tracking_service import utils as tracking_utils

from tuner.engine.own_mlflow_parts import NewLogs, write_part
from tuner.tracking.client_process import ClientProcess
from tuner.tracking.operations import CopyOwnLogs
from tuner.tracking.writer import CreateRun, EndRun, TrackingWriter

TOKEN = "tok-" + secrets.token_hex(8)


def weights(value: float) -> torch.nn.Linear:
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(value)
        model.bias.zero_()
    return model


@pytest.fixture(scope="module")
def left(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(the parts a trial's process left in storage, the model's id in its store): a
    point, then a model logged (and registered) with a point, then another point."""
    tmp_path = tmp_path_factory.mktemp("trial")
    trial_store = tmp_path / "trial" / "mlflow.db"
    trial_store.parent.mkdir()
    storage = tmp_path / "storage" / "own_mlflow" / "a1"
    filesystem = pyarrow.fs.LocalFileSystem()
    logs = NewLogs(trial_store)
    sent = 0

    def send() -> None:
        nonlocal sent
        part = logs.next_part()
        if part:
            sent += 1
            write_part(part, filesystem, f"{storage}/{sent:05d}", tmp_path / "staging", [TOKEN])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tracking_utils, "_tracking_uri", None)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{trial_store}")
        patch.chdir(trial_store.parent)  # its artifacts in ./mlruns, as a trial's are
        with mlflow.start_run():
            mlflow.log_metric("train_loss", 0.5, step=1)
            send()
            logged = mlflow.pytorch.log_model(
                weights(3.0),
                name="model",
                params={"api_token": TOKEN, "hidden": 16},
                tags={"stage": "epoch-2"},
                step=2,
                input_example=numpy.zeros((1, 2), dtype=numpy.float32),
                pip_requirements=["torch"],
                registered_model_name="digits-classifier",
            )
            mlflow.log_metric("val_accuracy", 0.75, step=2, model_id=logged.model_id)
            send()
            mlflow.log_metric("val_accuracy", 0.8, step=3, model_id=logged.model_id)
            send()
    assert sent == 3
    return storage.parent, str(logged.model_id)


@pytest.mark.parametrize("writer_process", [False, True], ids=["in_driver", "own_process"])
def test_a_model_the_function_logged_is_a_logged_model_of_its_trials_run(
    left: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer_process: bool
) -> None:
    storage = tmp_path / "own_mlflow"
    shutil.copytree(left[0], storage)
    uri = f"sqlite:///{tmp_path / 'sweep.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("own-models")
    writer = TrackingWriter(ClientProcess(uri) if writer_process else client, experiment_id)
    writer.submit(CreateRun("trial_1", "trial one", {"lr": "0.01"}, {}))
    writer.submit(CopyOwnLogs("trial_1", str(storage)))
    writer.submit(EndRun("trial_1", RunStatus.to_string(RunStatus.FINISHED), {}))
    writer.flush()
    run_id = writer.run_id("trial_1")
    writer.close()
    assert run_id is not None

    [model] = client.search_logged_models([experiment_id])
    assert model.model_id != left[1]  # the sweep store's own
    assert (model.name, model.source_run_id, str(model.status)) == ("model", run_id, "READY")
    assert model.params["hidden"] == "16"
    assert model.params["api_token"] == "<secret>"
    assert model.tags["stage"] == "epoch-2"
    assert sorted((m.step, m.value) for m in model.metrics or []) == [(2, 0.75), (3, 0.8)]
    outputs = client.get_run(run_id).outputs
    assert outputs is not None
    assert [(o.model_id, o.step) for o in outputs.model_outputs] == [(model.model_id, 2)]
    # Registered as the function asked, in the sweep's registry.
    [version] = client.search_model_versions("name = 'digits-classifier'")
    assert (str(version.version), version.run_id, version.source) == (
        "1",
        run_id,
        f"models:/{model.model_id}",
    )
    history = client.get_metric_history(run_id, "val_accuracy")
    assert sorted((p.step, p.value) for p in history) == [(2, 0.75), (3, 0.8)]  # each once
    # Its MLmodel names it and the trial's run, not the trial store's ids.
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # as a user loading it points MLflow
    local = mlflow.artifacts.download_artifacts(f"{model.artifact_location}/MLmodel",
                                                dst_path=str(tmp_path / "got"))  # fmt: skip
    described = yaml.safe_load(Path(local).read_text())
    assert (described["model_id"], described["run_id"]) == (model.model_id, run_id)
    loaded = mlflow.pytorch.load_model(f"models:/{model.model_id}")
    assert loaded(torch.ones(1, 2)).item() == pytest.approx(6.0)
    assert not list(storage.rglob("*"))  # copied, then removed from storage
