"""The built-in trainer: data splits, and exact resume from a per-epoch checkpoint."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from ray import tune
from rich.console import Console

from tuner.engine.experiments import Experiment
from tuner.engine.runner import RunOptions, run_sweep
from tuner.engine.storage import resolve_storage
from tuner.engine.tuner_factory import build_tuner
from tuner.search.early_stops import EarlyStops
from tuner.spec import parse_spec
from tuner.trainer.checkpoint import load_state
from tuner.trainer.data import DataSource, load_arrays, split_arrays
from tuner.trainer.knobs import ClassifierKnobs

EPOCHS = 5
CRASH_AFTER = 2


def test_splits_are_disjoint_fixed_and_standardized_on_train_only() -> None:
    splits = split_arrays(
        load_arrays(DataSource.of(ClassifierKnobs()), "classification"), "classification"
    )
    sizes = [len(s.labels) for s in (splits.train, splits.val, splits.test)]
    assert sum(sizes) == 1797 and min(sizes) > 300
    assert splits.feature_shape == (1, 8, 8) and splits.num_classes == 10
    train_mean = splits.train.features.mean(axis=0)
    assert np.allclose(train_mean, 0, atol=1e-4)
    # Validation statistics are not forced to zero: the scaler never saw them.
    assert np.abs(splits.val.features.mean(axis=0)).max() > 1e-3
    again = split_arrays(
        load_arrays(DataSource.of(ClassifierKnobs()), "classification"), "classification"
    )
    assert np.array_equal(again.val.labels, splits.val.labels)


class EpochLog(tune.Callback):  # type: ignore[misc]
    def __init__(self) -> None:
        self.epochs: list[int] = []

    def on_trial_result(
        self, iteration: int, trials: Any, trial: Any, result: dict, **info: Any
    ) -> None:
        self.epochs.append(int(result["epoch"]))


def run_trial(
    tmp_path: Path, name: str, crash_after: int
) -> tuple[list[int], dict[str, torch.Tensor], int]:
    spec = parse_spec(
        {
            "name": name,
            "trainable": "tests.trainables:crash_once_after",
            "metric": "val_accuracy",
            "mode": "max",
            "searcher": {"kind": "random", "seed": 0},
            "params": {"hidden": {"type": "grid", "values": [24]}},
            "config": {
                "epochs": EPOCHS,
                "dropout": 0.3,  # exercises the RNG state that the checkpoint carries
                "crash_after_epoch": crash_after,
                "crash_marker": str(tmp_path / f"{name}.crashed"),
            },
        }
    )
    log = EpochLog()
    experiment = Experiment(resolve_storage(str(tmp_path / "runs")), spec.name, name)
    tuner = build_tuner(
        spec,
        experiment,
        [log],
        EarlyStops.shared(experiment.uri),
        on_cluster=True,  # FailureConfig restarts the trial from its checkpoint
    )
    result = tuner.fit()[0]
    assert result.error is None
    with result.checkpoint.as_directory() as directory:
        state = load_state(directory)
    return log.epochs, state.model, state.epoch


@pytest.mark.ray
def test_checkpoint_at_epoch_k_resumes_at_k_plus_1_with_the_same_weights(
    ray_session: None, tmp_path: Path
) -> None:
    resumed_epochs, resumed_weights, resumed_last = run_trial(tmp_path, "resumed", CRASH_AFTER)
    assert (tmp_path / "resumed.crashed").exists(), "the injected crash did not happen"
    straight_epochs, straight_weights, _ = run_trial(tmp_path, "straight", crash_after=0)

    # Every epoch reported once, in order: the restart began at CRASH_AFTER + 1.
    assert resumed_epochs == list(range(1, EPOCHS + 1)) == straight_epochs
    assert resumed_last == EPOCHS
    # Same weights, bit for bit, as the run that was never interrupted.
    assert resumed_weights.keys() == straight_weights.keys()
    for name, tensor in resumed_weights.items():
        assert torch.equal(tensor, straight_weights[name]), name


@pytest.mark.ray
def test_a_trial_that_stops_itself_says_why(ray_session: None, tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "name": "patience",
            "trainable": "builtin:classifier",
            "metric": "val_accuracy",
            "mode": "max",
            "searcher": {"kind": "grid"},
            "params": {"lr": {"type": "grid", "values": [1e-6]}},  # learns nothing
            "config": {"epochs": 20, "patience": 2, "min_delta": 0.5},
        }
    )
    result = run_sweep(
        spec,
        RunOptions(
            tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
            storage=str(tmp_path / "runs"),
            console=Console(file=io.StringIO()),
        ),
    )
    assert result.best is not None and result.best.run_id is not None
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(result.best.run_id)
    # Epoch 1 sets the best; 2 and 3 do not beat it by 0.5; the trial ends after epoch 3.
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")]
    assert steps == [1, 2, 3]
    assert run.info.status == "FINISHED"
    assert run.data.tags["tuner.stop_reason"].startswith(
        "early stopping: val_loss did not improve by more than 0.5 for 2 epochs"
    )
