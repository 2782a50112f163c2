"""`val_loss` is one yardstick for every trial, whatever loss knob trains it.

It was the training loss: focal loss scored the same predictions on wine 0.39 where
cross-entropy scored 0.99, so a sweep with `metric: val_loss` (or ASHA and PBT on it)
that searched `loss`, `label_smoothing`, `focal_gamma` or `huber_delta` ranked trials by
which loss reads smaller. Now it is cross-entropy (classifier) or MSE on the standardized
targets (regressor), recomputed here from the trial's own checkpointed model.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from tuner.trainer.data import load_splits
from tuner.trainer.knobs import KNOBS_BY_TASK
from tuner.trainer.loop import predict, run_epochs, to_tensors
from tuner.trainer.models import build_model

CPU = torch.device("cpu")


def val_loss_and_outputs(task: Any, config: dict[str, Any]) -> tuple[float, torch.Tensor, Any]:
    epoch = next(run_epochs({"epochs": 1, **config}, task, None))
    state = epoch.state()
    knobs = KNOBS_BY_TASK[task].model_validate(state.knobs)
    model = build_model(tuple(state.feature_shape), state.outputs, knobs)
    model.load_state_dict(state.model)
    features, labels = to_tensors(load_splits(knobs, task).val)
    return epoch.metrics["val_loss"], predict(model, features, CPU), labels


@pytest.mark.parametrize(
    "knobs",
    [
        {"loss": "focal", "focal_gamma": 5.0},
        {"label_smoothing": 0.4},
        {"class_weights": "balanced"},
    ],
)
def test_the_classifiers_val_loss_is_cross_entropy_whatever_trains_it(
    knobs: dict[str, Any],
) -> None:
    val_loss, outputs, labels = val_loss_and_outputs("classification", {"dataset": "wine", **knobs})
    assert val_loss == pytest.approx(float(F.cross_entropy(outputs, labels)), rel=1e-5)


def test_the_regressors_val_loss_is_mse_whatever_trains_it() -> None:
    val_loss, outputs, targets = val_loss_and_outputs(
        "regression", {"dataset": "diabetes", "loss": "huber", "huber_delta": 0.1}
    )
    assert val_loss == pytest.approx(float(F.mse_loss(outputs.squeeze(1), targets)), rel=1e-5)
