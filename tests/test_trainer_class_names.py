"""A classifier's class names travel with its model: labels of any values (text, 3/7/9,
an image folder's names) are kept, in output order, in the checkpoint and beside the
model a sweep exports to MLflow, so its predictions read as the user's labels."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow import MlflowClient
from sklearn.datasets import load_wine

from tests.conftest import run_cli
from tests.test_trainer_data import load, write_classifier_sweep
from tuner.trainer.artifacts import export_model
from tuner.trainer.checkpoint import STATE_FILE, load_state, save_state
from tuner.trainer.data import split_arrays
from tuner.trainer.loop import run_epochs

GRAPES = {0: "barolo", 1: "grignolino", 2: "barbera"}


def named_wine(folder: Path) -> tuple[str, pd.DataFrame]:
    """Wine as a user would have it, its label column holding text."""
    bunch = load_wine(as_frame=True)
    frame = bunch.data.astype(np.float32)
    frame["label"] = bunch.target.map(GRAPES)
    path = folder / "grapes.csv"
    frame.to_csv(path, index=False)
    return str(path), frame


def test_label_values_are_kept_sorted_as_the_classes_of_the_indices(tmp_path: Path) -> None:
    location, frame = named_wine(tmp_path)
    arrays = load(location)
    assert arrays.classes == ("barbera", "barolo", "grignolino")
    assert split_arrays(arrays, "classification").classes == arrays.classes
    # Index i is class i's label: the indices read back as the file's labels.
    assert [arrays.classes[i] for i in arrays.labels] == frame["label"].tolist()

    np.savez(tmp_path / "odd.npz", features=np.zeros((12, 2)), label=np.repeat([9, 3, 7], 4))
    assert load(str(tmp_path / "odd.npz")).classes == (3, 7, 9)


def test_the_checkpoint_keeps_the_names_and_one_from_before_still_exports(
    tmp_path: Path,
) -> None:
    location, _ = named_wine(tmp_path)
    *_, last = run_epochs({"data_path": location, "epochs": 2}, "classification", None)
    save_state(last.state(), tmp_path)
    assert load_state(tmp_path).classes == ["barbera", "barolo", "grignolino"]

    # A checkpoint written before class names were kept: it loads, and its export
    # takes the names from the data it trained on.
    raw = torch.load(tmp_path / STATE_FILE, weights_only=True)
    del raw["classes"]
    torch.save(raw, tmp_path / STATE_FILE)
    assert load_state(tmp_path).classes is None
    assert export_model(str(tmp_path)).classes == ["barbera", "barolo", "grignolino"]


@pytest.mark.slow
def test_the_best_model_from_mlflow_predicts_the_users_labels(tmp_path: Path) -> None:
    """A real sweep on a CSV of text labels; its best model loaded back from MLflow as a
    user would, without tuner, and its outputs read as those labels."""
    location, frame = named_wine(tmp_path)
    write_classifier_sweep(tmp_path, "grapes", location)
    spec = yaml.safe_load((tmp_path / "sweep.yaml").read_text())
    spec["config"] |= {"epochs": 8, "lr": 0.01}
    spec["params"] = {"hidden": {"type": "int", "low": 16, "high": 32}}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ran = run_cli("run", "sweep.yaml", "--tracking-uri", tracking_uri, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr

    best = run_cli("best", "grapes", "--tracking-uri", tracking_uri, "--json", cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    report = json.loads(best.stdout)
    assert report["classes"] == f"runs:/{report['run_id']}/model/classes.json"

    # The model as a user fetches it from the run: classes.json comes with it.
    local = mlflow.artifacts.download_artifacts(
        f"runs:/{report['run_id']}/model", tracking_uri=tracking_uri, dst_path=str(tmp_path)
    )
    model = mlflow.pyfunc.load_model(local)
    classes = model.metadata.metadata["classes"]
    written = json.loads((Path(local) / "classes.json").read_text())
    assert classes == written == ["barbera", "barolo", "grignolino"]
    # The same model as an MLflow 3 logged model carries them too.
    (logged,) = MlflowClient(tracking_uri).search_logged_models([report["experiment_id"]])
    in_logged = mlflow.artifacts.download_artifacts(
        f"{logged.artifact_location}/classes.json", dst_path=str(tmp_path / "logged")
    )
    assert json.loads(Path(in_logged).read_text()) == classes

    features = frame.drop(columns=["label"]).to_numpy(np.float32)
    predicted = [classes[i] for i in model.predict(features).argmax(axis=1)]
    assert set(predicted) == set(GRAPES.values())
    assert np.mean(np.array(predicted) == frame["label"].to_numpy()) > 0.8

    text = run_cli("best", "grapes", "--tracking-uri", tracking_uri, cwd=tmp_path)
    assert f"  classes: {report['classes']} (" in text.stdout
