"""Cross-validation in the built-in trainers (`cv_folds`): the folds, what a trial
reports, its checkpoint and exact resume, and what validation refuses."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow import MlflowClient

from tests.conftest import run_cli
from tests.test_trainer_sequences import refusal, sweep
from tuner import load_spec
from tuner.tracking.tags import TAG_PARENT, TAG_ROLE
from tuner.trainer import artifacts
from tuner.trainer.checkpoint import TrainerState, load_state, save_state
from tuner.trainer.data import (
    Arrays,
    DataError,
    DataSource,
    Splits,
    Task,
    fold_indices,
    fold_problem,
    fold_splits,
    load_arrays,
    load_splits,
    split_arrays,
)
from tuner.trainer.folds import combine
from tuner.trainer.knobs import ClassifierKnobs, RegressorKnobs
from tuner.trainer.loop import predict, run_epochs, score, to_tensors
from tuner.trainer.losses import build_loss
from tuner.trainer.models import build_model

WINE: dict[str, Any] = {"dataset": "wine", "hidden": 16, "lr": 0.01, "cv_folds": 3}


def arrays_of(task: Task) -> Arrays:
    knobs = ClassifierKnobs(dataset="wine") if task == "classification" else RegressorKnobs()
    return load_arrays(DataSource.of(knobs), task)


def rows(features: np.ndarray, splits: Splits | None = None) -> np.ndarray:
    """A split's rows in the data's units (undoing its standardization), sorted: a set."""
    if splits is not None:
        assert splits.feature_mean is not None and splits.feature_std is not None
        features = features * splits.feature_std + splits.feature_mean
    return features[np.lexsort(features.T[::-1])]


# --- the folds ------------------------------------------------------------------------------


@pytest.mark.parametrize(("task", "count"), [("classification", 3), ("regression", 5)])
def test_the_folds_partition_the_rows_outside_the_test_split(task: Task, count: int) -> None:
    arrays = arrays_of(task)
    plain = split_arrays(arrays, task)
    folds = fold_indices(arrays, task, count)
    assert len(folds) == count
    validated = np.concatenate([val for _, val in folds])
    # Disjoint, and together the rows a trial without folds trains and validates on.
    assert len(set(validated.tolist())) == len(validated)
    outside_test = np.concatenate([plain.train.features, plain.val.features])
    assert np.allclose(rows(arrays.features[validated]), rows(outside_test, plain), atol=1e-3)
    for train, val in folds:  # each fold trains on all the others
        assert sorted(train.tolist()) == sorted(set(validated.tolist()) - set(val.tolist()))
    # The test split is the same rows as without folds; each fold standardizes on its own
    # training part.
    for fold in fold_splits(arrays, task, count):
        assert np.allclose(
            rows(fold.test.features, fold), rows(plain.test.features, plain), atol=1e-3
        )
        assert np.allclose(fold.train.features.mean(axis=0), 0, atol=1e-4)


def test_classifier_folds_keep_each_classs_share_to_within_a_row() -> None:
    arrays = arrays_of("classification")
    folds = fold_indices(arrays, "classification", 4)
    outside_test = arrays.labels[np.concatenate([val for _, val in folds])]
    for _, val in folds:
        for label in range(3):
            share = (outside_test == label).sum() / 4
            assert abs((arrays.labels[val] == label).sum() - share) < 1, label


# --- what a trial reports -------------------------------------------------------------------


def test_a_report_is_the_mean_over_folds_with_each_val_metrics_std() -> None:
    folds = [
        {"epoch": 2, "train_loss": 0.2, "val_loss": 0.4, "val_accuracy": 0.7, "lr": 0.1,
         "epoch_time_s": 1.0, "num_params": 99, "inference_ms": 0.2},
        {"epoch": 2, "train_loss": 0.4, "val_loss": 0.6, "val_accuracy": 0.9, "lr": 0.1,
         "epoch_time_s": 2.0, "num_params": 99, "inference_ms": 0.4},
    ]  # fmt: skip
    assert combine(folds) == pytest.approx(
        {
            "epoch": 2,
            "train_loss": 0.3,
            "val_loss": 0.5,
            "val_loss_std": 0.1,
            "val_accuracy": 0.8,
            "val_accuracy_std": 0.1,
            "lr": 0.1,
            "epoch_time_s": 3.0,  # the trial's epoch took both
            "num_params": 99,  # one model's, not a sum
            "inference_ms": 0.3,
        }
    )


def test_a_cross_validated_trial_reports_the_mean_of_its_folds_models(tmp_path: Path) -> None:
    *_, last = run_epochs({**WINE, "epochs": 3}, "classification", None)
    state = last.state()
    knobs = ClassifierKnobs(**{**WINE, "epochs": 3})
    assert state.folds is not None and len(state.folds) == 3
    # Score each fold's model, as the checkpoint keeps it, on the fold it left out.
    per_fold = []
    for fold, saved in enumerate(state.folds):
        splits = load_splits(knobs, "classification", fold)
        model = build_model(splits.feature_shape, 3, knobs)
        model.load_state_dict(saved["model"])
        features, labels = to_tensors(splits.val)
        outputs = predict(model, features, torch.device("cpu"))
        per_fold.append(score(outputs, labels, build_loss(knobs), splits, "val"))
    accuracies = [metrics["val_accuracy"] for metrics in per_fold]
    assert last.metrics["val_accuracy"] == pytest.approx(np.mean(accuracies))
    assert last.metrics["val_accuracy_std"] == pytest.approx(np.std(accuracies))
    assert min(accuracies) <= last.metrics["val_accuracy"] <= max(accuracies)
    assert last.metrics["val_loss"] == pytest.approx(np.mean([m["val_loss"] for m in per_fold]))
    # The last report has the class report's mean and std too.
    assert {"val_f1", "val_f1_std", "val_precision_std"} <= last.metrics.keys()

    # The checkpoint's model, what MLflow exports and scores on the test split, is fold 0's,
    # scored on the test rows standardized as fold 0's training rows were.
    for name, tensor in state.model.items():
        assert torch.equal(tensor, state.folds[0]["model"][name])
        assert not torch.equal(tensor, state.folds[1]["model"][name])
    save_state(state, tmp_path)
    fold0 = load_splits(knobs, "classification", 0)
    model = artifacts.restore(str(tmp_path)).model
    outputs = predict(model, to_tensors(fold0.test)[0], torch.device("cpu"))
    expected = float((outputs.argmax(1) == to_tensors(fold0.test)[1]).float().mean())
    assert artifacts.test_metrics(str(tmp_path))["test_accuracy"] == pytest.approx(expected)


def test_early_stopping_judges_the_mean_and_stops_every_fold_together() -> None:
    # Epoch 1 sets the best mean val_loss; epoch 2 cannot beat it by 10: the trial stops.
    epochs = list(run_epochs({**WINE, "patience": 1, "min_delta": 10}, "classification", None))
    assert [epoch.number for epoch in epochs] == [1, 2]
    assert epochs[-1].stop and epochs[-1].last
    assert epochs[-1].metrics["stop_reason"].startswith("early stopping: val_loss did not")
    state = epochs[-1].state()
    assert state.folds is not None and {fold["epoch"] for fold in state.folds} == {2}
    assert state.knobs["patience"] == 1 and state.stopper["stale_epochs"] == 1


# --- checkpoints and resume -----------------------------------------------------------------


def straight_and_resumed(
    config: dict[str, Any], tmp_path: Path, after: int, changed: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], TrainerState, list[dict[str, Any]], TrainerState]:
    """A straight run's reports and last state, and those of a run resumed from the
    straight run's checkpoint of epoch `after` (written and read back from disk)."""
    straight = []
    for epoch in run_epochs(config, "classification", None):
        straight.append(dict(epoch.metrics))
        if epoch.number == after:
            save_state(epoch.state(), tmp_path)
        final = copy.deepcopy(epoch.state())
    resumed = []
    resume = load_state(tmp_path)
    for epoch in run_epochs({**config, **(changed or {})}, "classification", resume):
        resumed.append(dict(epoch.metrics))
        resumed_final = epoch.state()
    return straight, final, resumed, resumed_final


def test_a_cross_validated_trial_resumes_exactly_from_a_mid_way_checkpoint(
    tmp_path: Path,
) -> None:
    # Dropout draws from torch's global RNG, which every fold keeps a copy of.
    config = {**WINE, "epochs": 4, "dropout": 0.3, "lr_schedule": "cosine"}
    straight, final, resumed, resumed_final = straight_and_resumed(config, tmp_path, after=2)
    assert [m["epoch"] for m in resumed] == [3, 4]
    for key in ("train_loss", "val_loss", "val_loss_std", "val_accuracy", "lr"):
        assert [m[key] for m in resumed] == [m[key] for m in straight[2:]], key
    assert final.folds is not None and resumed_final.folds is not None
    for before, after in zip(final.folds, resumed_final.folds, strict=True):
        for name, tensor in before["model"].items():
            assert torch.equal(tensor, after["model"][name]), name
    # On disk, fold 0's tensors are kept once, shared by `model` and `folds[0]`.
    saved = torch.load(tmp_path / "state.pt", weights_only=True)
    shared = next(iter(saved["model"]))
    assert saved["model"][shared].data_ptr() == saved["folds"][0]["model"][shared].data_ptr()


def test_a_schedule_and_a_pbt_exploit_change_every_fold(tmp_path: Path) -> None:
    scheduled = {**WINE, "epochs": 3, "schedule": {3: {"lr": 0.001}}}
    assert [e.metrics["lr"] for e in run_epochs(scheduled, "classification", None)] == (
        pytest.approx([0.01, 0.01, 0.001])
    )
    # A copied checkpoint with a new lr (PBT): every fold goes on with it.
    _, _, resumed, state = straight_and_resumed(
        {**WINE, "epochs": 3}, tmp_path, after=1, changed={"lr": 0.002}
    )
    assert [m["lr"] for m in resumed] == pytest.approx([0.002, 0.002])
    assert state.folds is not None
    assert {fold["optimizer"]["param_groups"][0]["lr"] for fold in state.folds} == {0.002}


def test_a_checkpoint_with_other_folds_is_refused(tmp_path: Path) -> None:
    first = next(run_epochs({**WINE, "epochs": 2}, "classification", None)).state()
    with pytest.raises(ValueError, match="the checkpoint holds 3 folds; this trial trains 4"):
        list(run_epochs({**WINE, "epochs": 2, "cv_folds": 4}, "classification", first))


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, 21, 2.5, True, "three"])
def test_a_bad_cv_folds_is_one_line(bad: Any, tmp_path: Path) -> None:
    refused = refusal(sweep(tmp_path, {"dataset": "wine", "cv_folds": bad}))
    assert refused.key == "config.cv_folds"


def test_more_folds_than_a_classs_rows_is_one_line_before_any_trial(tmp_path: Path) -> None:
    # 95 rows of "a", 5 of "b": the test split takes one "b", four are left for the folds.
    generator = np.random.default_rng(0)
    table = pd.DataFrame(generator.normal(size=(100, 3)), columns=["x", "y", "z"])
    table["label"] = ["a"] * 95 + ["b"] * 5
    rare = str(tmp_path / "rare.csv")
    table.to_csv(rare, index=False)
    load_spec(sweep(tmp_path, {"data_path": rare, "cv_folds": 4}))
    refused = refusal(sweep(tmp_path, {"data_path": rare, "cv_folds": 5}))
    assert refused.key == "config.cv_folds"
    assert refused.problem.endswith(
        "rare.csv: 5 folds, but the rarest class has 4 rows outside the test split: "
        "each class needs one per fold"
    )
    searched = {"cv_folds": {"type": "int", "low": 2, "high": 6}}
    assert refusal(sweep(tmp_path, {"data_path": rare}, searched)).key == "params.cv_folds"
    # A trial that draws too many says the same.
    knobs = ClassifierKnobs(data_path=rare, cv_folds=5)
    with pytest.raises(DataError) as caught:
        load_splits(knobs, "classification", 0)
    assert caught.value.key == "config.cv_folds"
    assert "the rarest class has 4 rows" in caught.value.problem
    # A regressor's folds need a row each.
    ten = Arrays(np.zeros((10, 2), np.float32), np.arange(10, dtype=np.float32))
    assert fold_problem(ten, "regression", 8) is None
    assert fold_problem(ten, "regression", 9) == "9 folds, but only 8 rows outside the test split"


# --- through the CLI ------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_cross_validated_sweep_shows_each_epochs_mean_and_std_in_mlflow(tmp_path: Path) -> None:
    config = {"dataset": "wine", "epochs": 3, "cv_folds": 3, "hidden": 16}
    path = sweep(tmp_path, config, name="folds")
    spec = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**spec, "num_samples": 2, "max_concurrent_trials": 2}))
    done = run_cli("run", path.name, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("folds")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [run for run in runs if run.data.tags.get(TAG_ROLE) == "sweep"]
    trials = [run for run in runs if run.data.tags.get(TAG_PARENT) == parent.info.run_id]
    assert len(trials) == 2 and {run.info.status for run in trials} == {"FINISHED"}
    assert parent.data.params["config.cv_folds"] == "3"
    for trial in trials:
        for key in ("val_accuracy", "val_accuracy_std", "val_loss_std"):
            points = client.get_metric_history(trial.info.run_id, key)
            assert len(points) == 3, key
            assert all(0 <= point.value <= 1 for point in points if "accuracy" in key)
    # The best trial's model (fold 0's) was exported and scored on the test split.
    assert "test_accuracy" in parent.data.metrics
