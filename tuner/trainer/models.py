"""Network bodies for the built-in trainers, built from torch.nn blocks.

The same MLP or CNN serves classification (one output per class) and regression (one
output); only the head's width differs.
"""

from __future__ import annotations

import math
from typing import Literal

from torch import nn

from tuner.trainer.knobs import Activation, Init, TrainerKnobs

ACTIVATIONS: dict[Activation, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}

# kaiming's gain must match the activation that follows the layer
Nonlinearity = Literal["relu", "leaky_relu", "tanh", "sigmoid"]
_KAIMING_NONLINEARITY: dict[Activation, Nonlinearity] = {
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "gelu": "relu",  # no exact gain for GELU; ReLU's is the usual stand-in
    "tanh": "tanh",
    "sigmoid": "sigmoid",
}


def _mlp_layers(width_in: int, knobs: TrainerKnobs) -> tuple[list[nn.Module], int]:
    layers: list[nn.Module] = []
    for _ in range(knobs.depth):
        layers.append(nn.Linear(width_in, knobs.hidden))
        if knobs.batch_norm:
            layers.append(nn.BatchNorm1d(knobs.hidden))
        layers.append(ACTIVATIONS[knobs.activation]())
        if knobs.dropout > 0:
            layers.append(nn.Dropout(knobs.dropout))
        width_in = knobs.hidden
    return layers, width_in


def build_mlp(num_features: int, num_outputs: int, knobs: TrainerKnobs) -> nn.Sequential:
    """`depth` hidden layers of width `hidden` (batch norm, activation, dropout), linear head."""
    layers, width = _mlp_layers(num_features, knobs)
    return nn.Sequential(nn.Flatten(), *layers, nn.Linear(width, num_outputs))


def build_cnn(image_shape: tuple[int, ...], num_outputs: int, knobs: TrainerKnobs) -> nn.Sequential:
    """`conv_blocks` conv blocks (channels double each block), then the MLP head."""
    channels_in, height, width = image_shape
    layers: list[nn.Module] = []
    channels = knobs.channels
    for _ in range(knobs.conv_blocks):
        layers.append(nn.Conv2d(channels_in, channels, knobs.kernel_size, padding="same"))
        if knobs.batch_norm:
            layers.append(nn.BatchNorm2d(channels))
        layers.append(ACTIVATIONS[knobs.activation]())
        # Pool only while the image is big enough: digits are 8x8.
        if knobs.pooling != "none" and min(height, width) >= 2:
            pool = nn.MaxPool2d(2) if knobs.pooling == "max" else nn.AvgPool2d(2)
            layers.append(pool)
            height, width = height // 2, width // 2
        channels_in, channels = channels, channels * 2
    layers.append(nn.Flatten())
    head, head_width = _mlp_layers(channels_in * height * width, knobs)
    return nn.Sequential(*layers, *head, nn.Linear(head_width, num_outputs))


def initialize(model: nn.Module, init: Init, activation: Activation) -> None:
    """Re-initialize every linear and conv weight (biases to zero); 'default' keeps torch's."""
    if init == "default":
        return
    nonlinearity = _KAIMING_NONLINEARITY[activation]
    for module in model.modules():
        if not isinstance(module, nn.Linear | nn.Conv2d):
            continue
        # Glorot as published (gain 1): variance 2 / (fan_in + fan_out).
        if init == "xavier_uniform":
            nn.init.xavier_uniform_(module.weight)
        elif init == "xavier_normal":
            nn.init.xavier_normal_(module.weight)
        elif init == "kaiming_uniform":
            nn.init.kaiming_uniform_(module.weight, nonlinearity=nonlinearity)
        else:
            nn.init.kaiming_normal_(module.weight, nonlinearity=nonlinearity)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def build_model(feature_shape: tuple[int, ...], num_outputs: int, knobs: TrainerKnobs) -> nn.Module:
    if knobs.model == "cnn":
        if len(feature_shape) != 3:
            raise ValueError(
                f"model 'cnn' needs image-shaped data (C, H, W); this data is {feature_shape}"
            )
        model = build_cnn(feature_shape, num_outputs, knobs)
    else:
        model = build_mlp(math.prod(feature_shape), num_outputs, knobs)
    initialize(model, knobs.init, knobs.activation)
    return model
