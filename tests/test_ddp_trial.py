"""A multi-worker trial of the built-in classifier: 2 Ray Train workers under DDP (gloo,
CPU) take the same first epoch as one process on the same global batch, score the whole
validation split, and reach MLflow as one trial with each epoch once."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import torch
from mlflow import MlflowClient
from rich.console import Console

from tuner.engine.runner import RunOptions, run_sweep
from tuner.spec import parse_spec
from tuner.trainer.checkpoint import load_state
from tuner.trainer.data import load_splits
from tuner.trainer.knobs import ClassifierKnobs
from tuner.trainer.loop import run_epochs

EPOCHS = 2
# Dropout and augmentation off (their defaults): they draw per worker. batch_size 50
# leaves a short last batch, split unevenly between the workers.
CONFIG: dict[str, Any] = {"epochs": EPOCHS, "batch_size": 50, "optimizer": "sgd", "seed": 3}
LR = 0.05
# DDP sums the two halves' gradients in another order than one backward pass does.
TOLERANCE = 1e-5


def sweep(tmp_path: Path) -> tuple[Any, MlflowClient]:
    spec = parse_spec(
        {
            "name": "ddp",
            "trainable": "builtin:classifier",
            "metric": "val_accuracy",
            "mode": "max",
            "searcher": {"kind": "grid"},
            "resources_per_trial": {"workers": 2, "cpu": 1, "gpu": 0},
            # A checkpoint after every epoch (the sweep keeps the last: epoch 2's weights).
            "checkpoint": {"every_epochs": 1, "min_interval_s": 0},
            "params": {"lr": {"type": "grid", "values": [LR]}},
            "config": CONFIG,
        }
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_sweep(
        spec,
        RunOptions(
            tracking_uri=uri, storage=str(tmp_path / "runs"), console=Console(file=io.StringIO())
        ),
    )
    return result, MlflowClient(uri)


def one_process() -> list[Any]:
    """The same trial's epochs in this process, without Ray: the reference."""
    return list(run_epochs({**CONFIG, "lr": LR}, "classification", None))


@pytest.mark.ray
def test_two_workers_train_as_one_process_and_log_each_epoch_once(
    ray_session: None, tmp_path: Path
) -> None:
    result, client = sweep(tmp_path)
    assert result.best is not None and result.best.run_id is not None

    experiment = client.get_experiment_by_name("ddp")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 1, "one child run per trial, not per worker"
    run_id = children[0].info.run_id
    history = {
        key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
        for key in ("train_loss", "val_accuracy")
    }
    assert [step for step, _ in history["train_loss"]] == list(range(1, EPOCHS + 1))
    assert [step for step, _ in history["val_accuracy"]] == list(range(1, EPOCHS + 1))

    epochs = one_process()
    expected = epochs[0].metrics
    for (_, loss), epoch in zip(history["train_loss"], epochs, strict=True):
        assert loss == pytest.approx(epoch.metrics["train_loss"], abs=TOLERANCE)
    # The whole validation split, not rank 0's half: the same count of right answers
    # as one process scoring all of it.
    val_size = len(load_splits(ClassifierKnobs(**CONFIG), "classification").val.labels)
    right = history["val_accuracy"][0][1] * val_size
    assert right == pytest.approx(expected["val_accuracy"] * val_size, abs=1e-6)

    # The trial's last checkpoint (Tune's copy of rank 0's; the sweep keeps the last
    # only) holds one process's weights after the same epochs.
    saved = sorted((tmp_path / "runs" / "ddp").glob("run-*/trial_*/checkpoint_*"))
    assert len(saved) == 1
    state = load_state(saved[0])
    assert state.epoch == EPOCHS
    weights = epochs[-1].state().model
    assert state.model.keys() == weights.keys(), "the inner model, not DDP's module.*"
    for name, tensor in weights.items():
        torch.testing.assert_close(state.model[name], tensor, atol=TOLERANCE, rtol=0)
    drift = max(float((state.model[n] - w).abs().max()) for n, w in weights.items())
    print(f"2 workers vs 1 process after {EPOCHS} epochs: max |weight difference| {drift:.2e}")
    # Ray Train's own copies of the checkpoints are gone once Tune holds them.
    assert not list((tmp_path / "runs" / "ddp").glob("run-*/trial_*/train-runs"))
    # The Train run started its controller and workers, and no Ray Data actor: the
    # trial has no datasets for one to serve (tuner.engine.train_without_data).
    made = {actor["ActorClassName"] for actor in ray_actors().values()}
    assert {"TrainController", "RayTrainWorker"} <= made, made
    assert "DatasetManager" not in made, made


def ray_actors() -> dict[str, Any]:
    """Every actor this Ray has made, live or dead, from its GCS (no dashboard here)."""
    from ray._private.state import actors

    return dict(actors())
