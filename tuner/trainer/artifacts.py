"""What a finished built-in trial leaves behind: its model, and its score on the test split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tuner.trainer.checkpoint import load_state
from tuner.trainer.data import Task, model_splits
from tuner.trainer.knobs import KNOBS_BY_TASK, TrainerKnobs
from tuner.trainer.loop import predict, score, to_tensors
from tuner.trainer.losses import build_loss
from tuner.trainer.models import build_model


@dataclass(frozen=True)
class Restored:
    model: nn.Module  # eval mode, on the CPU
    knobs: TrainerKnobs
    task: Task


def restore(checkpoint_dir: str) -> Restored:
    """Rebuild a trained model from a checkpoint directory: one read of the checkpoint."""
    state = load_state(checkpoint_dir)
    task: Task = state.task  # type: ignore[assignment]
    knobs = KNOBS_BY_TASK[task].model_validate(state.knobs)
    model = build_model(tuple(state.feature_shape), state.outputs, knobs)
    model.load_state_dict(state.model)
    return Restored(model.eval(), knobs, task)


def export_model(checkpoint_dir: str) -> tuple[nn.Module, Any]:
    """The trained model and a few validation rows as its MLflow input example."""
    restored = restore(checkpoint_dir)
    example = model_splits(restored.knobs, restored.task).val.features[:5]
    return restored.model, example


def test_metrics(checkpoint_dir: str) -> dict[str, float]:
    """The trained model on the test split, which the search never saw: run once, at the end.
    Under cv_folds the model is fold 0's, and the test split standardized as its data."""
    restored = restore(checkpoint_dir)
    splits = model_splits(restored.knobs, restored.task)
    features, labels = to_tensors(splits.test)
    outputs = predict(restored.model, features, device=torch.device("cpu"))
    return score(outputs, labels, build_loss(restored.knobs), splits, "test")
