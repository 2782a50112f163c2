"""Optimizers by name, built from torch.optim."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from tuner.trainer.knobs import ClassifierKnobs


def build_optimizer(
    parameters: Iterable[torch.nn.Parameter], knobs: ClassifierKnobs
) -> torch.optim.Optimizer:
    if knobs.optimizer == "sgd":
        return torch.optim.SGD(
            parameters, lr=knobs.lr, momentum=knobs.momentum, weight_decay=knobs.weight_decay
        )
    if knobs.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            parameters, lr=knobs.lr, momentum=knobs.momentum, weight_decay=knobs.weight_decay
        )
    if knobs.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=knobs.lr, weight_decay=knobs.weight_decay)
    return torch.optim.Adam(parameters, lr=knobs.lr, weight_decay=knobs.weight_decay)
