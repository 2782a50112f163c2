"""Network bodies for the built-in trainers, built from torch.nn blocks.

The same MLP, CNN, GRU, LSTM or 1-D CNN serves classification (one output per class) and
regression (one output); only the head's width differs.
"""

from __future__ import annotations

import math
from typing import Literal

from torch import Tensor, nn

from tuner.trainer.data import model_problem
from tuner.trainer.knobs import TORCHVISION_BLOCKS, Activation, Init, TrainerKnobs

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


class Recurrent(nn.Module):
    """A stacked GRU or LSTM over (N, T, F) sequences, and a linear head."""

    def __init__(self, kind: str, num_features: int, num_outputs: int, knobs: TrainerKnobs) -> None:
        super().__init__()
        layer = nn.GRU if kind == "gru" else nn.LSTM
        self.rnn = layer(
            num_features,
            knobs.hidden,
            num_layers=knobs.depth,
            batch_first=True,
            # torch drops out between stacked layers only; the head's dropout below
            # makes the knob mean something for one layer too.
            dropout=knobs.dropout if knobs.depth > 1 else 0.0,
            bidirectional=knobs.bidirectional,
        )
        self.directions = 2 if knobs.bidirectional else 1
        self.dropout = nn.Dropout(knobs.dropout)
        self.head = nn.Linear(knobs.hidden * self.directions, num_outputs)

    def forward(self, sequences: Tensor) -> Tensor:
        _, state = self.rnn(sequences)
        hidden = state[0] if isinstance(state, tuple) else state  # an LSTM's is (h, c)
        # The top layer's final state in each direction: forward after step T-1, backward
        # after step 0, each having read the whole sequence. (The output at step T-1
        # would give the backward direction one step of context; mean-pooling every step
        # would dilute a pattern seen once.)
        last = hidden[-self.directions :].transpose(0, 1).reshape(len(sequences), -1)
        return self.head(self.dropout(last))  # type: ignore[no-any-return]


class ChannelsFirst(nn.Module):
    """(N, T, F) -> (N, F, T): Conv1d reads features as channels."""

    def forward(self, sequences: Tensor) -> Tensor:
        return sequences.transpose(1, 2)


def build_conv1d(
    sequence_shape: tuple[int, ...], num_outputs: int, knobs: TrainerKnobs
) -> nn.Sequential:
    """`conv_blocks` Conv1d blocks over time (channels double each block), a global
    average over time, then the MLP head."""
    steps, channels_in = sequence_shape
    layers: list[nn.Module] = [ChannelsFirst()]
    channels = knobs.channels
    for _ in range(knobs.conv_blocks):
        layers.append(nn.Conv1d(channels_in, channels, knobs.kernel_size, padding="same"))
        if knobs.batch_norm:
            layers.append(nn.BatchNorm1d(channels))
        layers.append(ACTIVATIONS[knobs.activation]())
        if knobs.pooling != "none" and steps >= 2:
            layers.append(nn.MaxPool1d(2) if knobs.pooling == "max" else nn.AvgPool1d(2))
            steps //= 2
        channels_in, channels = channels, channels * 2
    # The average over the steps left: a pattern counts wherever in time it appears, and
    # the head's size does not depend on the sequences' length.
    layers += [nn.AdaptiveAvgPool1d(1), nn.Flatten()]
    head, head_width = _mlp_layers(channels_in, knobs)
    return nn.Sequential(*layers, *head, nn.Linear(head_width, num_outputs))


def initialize(model: nn.Module, init: Init, activation: Activation) -> None:
    """Re-initialize every linear and conv weight (biases to zero); 'default' keeps torch's.

    Recurrent layers keep torch's own initialization: their gates are not followed by
    the knobs' activation, so its gain does not apply."""
    if init == "default":
        return
    nonlinearity = _KAIMING_NONLINEARITY[activation]
    for module in model.modules():
        if not isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d):
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
    problem = model_problem(knobs.model, feature_shape)
    if problem is not None:
        raise ValueError(f"model: {problem}")
    model: nn.Module
    if knobs.model == "cnn":
        model = build_cnn(feature_shape, num_outputs, knobs)
    elif knobs.model in ("gru", "lstm"):
        model = Recurrent(knobs.model, feature_shape[-1], num_outputs, knobs)
    elif knobs.model == "conv1d":
        model = build_conv1d(feature_shape, num_outputs, knobs)
    elif knobs.model in TORCHVISION_BLOCKS:
        from tuner.trainer.vision import TorchvisionBody  # imports torchvision

        model = TorchvisionBody(knobs.model, feature_shape[0], num_outputs)
    else:
        model = build_mlp(math.prod(feature_shape), num_outputs, knobs)
    initialize(model, knobs.init, knobs.activation)
    return model
