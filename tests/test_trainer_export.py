"""The model a built-in trial leaves for deployment takes raw samples, as in the user's
data, and a regressor's predictions come back in the data's units: the trainer's
standardization travels inside the model."""

from __future__ import annotations

import math
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
    model, example = export_model(folder)
    features, targets = raw_test_rows(datasets.load_diabetes(), stratify=False)
    with torch.no_grad():
        predicted = model(torch.from_numpy(features)).squeeze(1).numpy()
    rmse = math.sqrt(float(((predicted - targets) ** 2).mean()))
    assert rmse == pytest.approx(artifacts.test_metrics(folder)["test_rmse"], rel=1e-4)
    assert 40 < rmse < 80  # diabetes targets run 25-346; a mean-only model scores ~77
    assert example.dtype == np.float32 and example.shape == (5, 10)


def test_a_classifier_scores_raw_rows_as_the_trainer_did(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path, {"dataset": "wine", "epochs": 10}, "classification")
    model, _ = export_model(folder)
    features, labels = raw_test_rows(datasets.load_wine(), stratify=True)
    with torch.no_grad():
        predicted = model(torch.from_numpy(features)).argmax(1).numpy()
    accuracy = float((predicted == labels).mean())
    assert accuracy == pytest.approx(artifacts.test_metrics(folder)["test_accuracy"])
    assert accuracy > 0.8
