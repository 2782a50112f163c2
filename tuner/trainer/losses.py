"""Losses for the built-in trainers: cross-entropy (label smoothing), focal, mse, huber, L1."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from tuner.trainer.knobs import ClassifierKnobs, RegressorKnobs, TrainerKnobs

LossFn = Callable[[Tensor, Tensor], Tensor]


def focal_loss(
    logits: Tensor, labels: Tensor, gamma: float, weight: Tensor | None = None
) -> Tensor:
    """Mean of -(1 - p_t)^gamma * log(p_t): easy examples weigh less (Lin et al., 2017);
    with class weights, their weighted mean, as cross-entropy takes it."""
    log_p = torch.log_softmax(logits.float(), dim=1).gather(1, labels[:, None]).squeeze(1)
    losses = -((1 - log_p.exp()) ** gamma) * log_p
    if weight is None:
        return losses.mean()
    weights = weight[labels]
    return (losses * weights).sum() / weights.sum()


def balanced_class_weights(labels: Tensor, num_classes: int) -> Tensor:
    """n / (k * n_c) for each class c: every class weighs the same in the loss in all
    (scikit-learn's class_weight="balanced"); a class absent from `labels` weighs 0."""
    counts = torch.bincount(labels, minlength=num_classes).float()
    weights = len(labels) / (num_classes * counts.clamp(min=1))
    return torch.where(counts > 0, weights, torch.zeros_like(weights))


def build_loss(knobs: TrainerKnobs, class_weight: Tensor | None = None) -> LossFn:
    """The loss; `class_weight` (per class, for training) where the knobs ask for it."""
    if isinstance(knobs, ClassifierKnobs):
        if knobs.loss == "focal":
            gamma = knobs.focal_gamma
            return lambda logits, labels: focal_loss(logits, labels, gamma, class_weight)
        return nn.CrossEntropyLoss(weight=class_weight, label_smoothing=knobs.label_smoothing)
    assert isinstance(knobs, RegressorKnobs)
    regression: nn.Module = (
        nn.HuberLoss(delta=knobs.huber_delta) if knobs.loss == "huber" else nn.MSELoss()
    )
    return lambda outputs, targets: regression(outputs.squeeze(1).float(), targets)


def scoring_loss(knobs: TrainerKnobs) -> LossFn:
    """The loss `val_loss` and `test_loss` report, whatever loss trains: cross-entropy
    (no smoothing, no class weights) for the classifier, MSE on the standardized targets
    for the regressor. A search compares trials by it, and early stopping judges it: with
    the training loss, focal loss scored the same predictions 0.39 where cross-entropy
    scored 0.99, so `metric: val_loss` picked whichever loss knob reads smaller."""
    if isinstance(knobs, ClassifierKnobs):
        return nn.CrossEntropyLoss()
    mse = nn.MSELoss()
    return lambda outputs, targets: mse(outputs.squeeze(1).float(), targets)


def l1_penalty(model: nn.Module) -> Tensor:
    """Sum of |w| over weight matrices and kernels (biases and norm scales excluded)."""
    weights = [p for name, p in model.named_parameters() if name.endswith("weight") and p.dim() > 1]
    return torch.stack([w.abs().sum() for w in weights]).sum()
