"""Network bodies for the built-in trainer."""

from __future__ import annotations

from torch import nn


def build_mlp(
    num_features: int, num_classes: int, *, hidden: int, depth: int, dropout: float
) -> nn.Sequential:
    """`depth` hidden layers of width `hidden`, ReLU, optional dropout, linear head."""
    layers: list[nn.Module] = []
    width_in = num_features
    for _ in range(depth):
        layers += [nn.Linear(width_in, hidden), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width_in = hidden
    layers.append(nn.Linear(width_in, num_classes))
    return nn.Sequential(*layers)
