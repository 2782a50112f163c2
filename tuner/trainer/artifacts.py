"""What a finished built-in trial leaves behind: its model, and its score on the test split."""

from __future__ import annotations

from typing import Any

from torch import nn

from tuner.trainer.checkpoint import load_state
from tuner.trainer.data import Task, load_splits
from tuner.trainer.knobs import KNOBS_BY_TASK
from tuner.trainer.loop import predict, score, to_tensors
from tuner.trainer.losses import build_loss
from tuner.trainer.models import build_model


def load_model(checkpoint_dir: str) -> nn.Module:
    """Rebuild a trained model from a checkpoint directory, in eval mode, on the CPU."""
    state = load_state(checkpoint_dir)
    knobs = KNOBS_BY_TASK[state.task].model_validate(state.knobs)
    model = build_model(tuple(state.feature_shape), state.outputs, knobs)
    model.load_state_dict(state.model)
    return model.eval()


def export_model(checkpoint_dir: str) -> tuple[nn.Module, Any]:
    """The trained model and a few validation rows as its MLflow input example."""
    state = load_state(checkpoint_dir)
    knobs = KNOBS_BY_TASK[state.task].model_validate(state.knobs)
    example = load_splits(knobs, state.task).val.features[:5]  # type: ignore[arg-type]
    return load_model(checkpoint_dir), example


def test_metrics(checkpoint_dir: str) -> dict[str, float]:
    """The trained model on the test split, which the search never saw: run once, at the end."""
    state = load_state(checkpoint_dir)
    task: Task = state.task  # type: ignore[assignment]
    knobs = KNOBS_BY_TASK[task].model_validate(state.knobs)
    splits = load_splits(knobs, task)
    features, labels = to_tensors(splits.test)
    outputs = predict(load_model(checkpoint_dir), features, device=_cpu())
    return score(outputs, labels, build_loss(knobs), splits, "test")


def _cpu() -> Any:
    import torch

    return torch.device("cpu")
