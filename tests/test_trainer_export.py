"""The model a built-in trial leaves for deployment takes raw samples, as in the user's
data, and a regressor's predictions come back in the data's units: the trainer's
standardization travels inside the model."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn import datasets

from tuner.trainer import artifacts
from tuner.trainer.artifacts import export_model
from tuner.trainer.checkpoint import save_state
from tuner.trainer.data import Task
from tuner.trainer.loop import run_epochs
from tuner.trainer.splits import SPLIT_SEED, TEST_FRACTION


def checkpoint(tmp_path: Path, config: dict[str, Any], task: Task) -> str:
    *_, last = run_epochs(config, task, None)
    save_state(last.state(), tmp_path)
    return str(tmp_path)


def raw_test_rows(bunch: Any, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """The test split's rows as they are in the data set, before any standardization."""
    from sklearn.model_selection import train_test_split

    _, test = train_test_split(
        np.arange(len(bunch.target)),
        test_size=TEST_FRACTION,
        random_state=SPLIT_SEED,
        stratify=bunch.target if stratify else None,
    )
    return bunch.data[test].astype(np.float32), bunch.target[test]


def test_a_regressor_predicts_raw_rows_in_the_datas_units(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path, {"dataset": "diabetes", "epochs": 30, "lr": 1e-2}, "regression")
    exported = export_model(folder)
    model, example = exported.model, exported.example
    features, targets = raw_test_rows(datasets.load_diabetes(), stratify=False)
    with torch.no_grad():
        predicted = model(torch.from_numpy(features)).squeeze(1).numpy()
    rmse = math.sqrt(float(((predicted - targets) ** 2).mean()))
    assert rmse == pytest.approx(artifacts.test_metrics(folder)["test_rmse"], rel=1e-4)
    assert 40 < rmse < 80  # diabetes targets run 25-346; a mean-only model scores ~77
    assert example.dtype == np.float32 and example.shape == (5, 10)


def test_a_classifier_scores_raw_rows_as_the_trainer_did(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path, {"dataset": "wine", "epochs": 10}, "classification")
    model = export_model(folder).model
    features, labels = raw_test_rows(datasets.load_wine(), stratify=True)
    with torch.no_grad():
        predicted = model(torch.from_numpy(features)).argmax(1).numpy()
    accuracy = float((predicted == labels).mean())
    assert accuracy == pytest.approx(artifacts.test_metrics(folder)["test_accuracy"])
    assert accuracy > 0.8


READY_AHEAD = """
import sys
from mlflow.utils import requirements_utils
from tuner.tracking import models

models.import_model_logging(sys.argv[1])
models._model_logging_ready()
print("torch.export._trace" in sys.modules, requirements_utils._MODULES_TO_PACKAGES is not None)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("trainable", "readied"),
    [("builtin:classifier", "True True"), ("tests.trainables:smooth_peak", "False False")],
)
def test_the_best_models_export_is_readied_while_the_trials_run(
    trainable: str, readied: str
) -> None:
    """What the first export in a process pays for once (torch.export's tracing modules,
    MLflow's map of installed packages) is done ahead for a built-in trainer, and nothing
    is imported for a trainable that logs no model."""
    finished = subprocess.run(
        [sys.executable, "-c", READY_AHEAD, trainable],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert finished.stdout.split() == readied.split()
