"""What a finished built-in trial leaves behind: its model, and its score on the test split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tuner.trainer.checkpoint import load_state
from tuner.trainer.classes import ClassName
from tuner.trainer.data import Splits, Task, model_splits
from tuner.trainer.knobs import KNOBS_BY_TASK, TrainerKnobs
from tuner.trainer.loop import predict, score, to_tensors
from tuner.trainer.losses import scoring_loss
from tuner.trainer.models import build_model


@dataclass(frozen=True)
class Restored:
    model: nn.Module  # eval mode, on the CPU
    knobs: TrainerKnobs
    task: Task
    classes: list[ClassName] | None  # None: a regressor, or a checkpoint from before


def restore(checkpoint_dir: str) -> Restored:
    """Rebuild a trained model from a checkpoint directory: one read of the checkpoint."""
    state = load_state(checkpoint_dir)
    task: Task = state.task  # type: ignore[assignment]
    knobs = KNOBS_BY_TASK[task].model_validate(state.knobs)
    model = build_model(tuple(state.feature_shape), state.outputs, knobs)
    model.load_state_dict(state.model)
    return Restored(model.eval(), knobs, task, state.classes)


class RawInputs(nn.Module):
    """The trained model as a user calls it: on raw samples, as in their data file.

    The trainer standardized features (and regression targets) with its training
    split's statistics; a deployed model that wanted standardized inputs would need
    numbers its user never saw, and would silently mispredict on raw ones. The
    statistics ride along as buffers, so the exported graph applies them itself.
    """

    def __init__(self, model: nn.Module, splits: Splits) -> None:
        super().__init__()
        self.model = model
        assert splits.feature_mean is not None and splits.feature_std is not None
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.from_numpy(splits.feature_mean).float())
        self.register_buffer("std", torch.from_numpy(splits.feature_std).float())
        self.regression = not splits.num_classes
        self.target_mean, self.target_std = splits.target_mean, splits.target_std

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        outputs = self.model((features - self.mean) / self.std)
        if self.regression:  # back in the data's units
            return outputs * self.target_std + self.target_mean  # type: ignore[no-any-return]
        return outputs  # type: ignore[no-any-return]


@dataclass(frozen=True)
class ModelExport:
    model: nn.Module  # on raw samples (RawInputs), eval mode
    example: Any  # a few raw validation rows: the MLflow model's input example
    # A classifier's label for each output column, in order; None for a regressor.
    classes: list[ClassName] | None


def export_model(checkpoint_dir: str) -> ModelExport:
    """The trained model on raw samples, a few raw validation rows as its MLflow input
    example, and a classifier's class names."""
    restored = restore(checkpoint_dir)
    splits = model_splits(restored.knobs, restored.task)
    example = splits.val.features[:5] * splits.feature_std + splits.feature_mean
    # A checkpoint written before class names were kept: the data it trained on,
    # loaded again here anyway, says them (sorted, as the trainer encoded them).
    classes = restored.classes or (list(splits.classes) or None)
    return ModelExport(RawInputs(restored.model, splits).eval(), example.astype("float32"), classes)


def test_metrics(checkpoint_dir: str) -> dict[str, float]:
    """The trained model on the test split, which the search never saw: run once, at the end.
    Under cv_folds the model is fold 0's, and the test split standardized as its data."""
    restored = restore(checkpoint_dir)
    splits = model_splits(restored.knobs, restored.task)
    features, labels = to_tensors(splits.test)
    outputs = predict(restored.model, features, device=torch.device("cpu"))
    return score(outputs, labels, scoring_loss(restored.knobs), splits, "test")
