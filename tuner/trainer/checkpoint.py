"""Trainer state <-> a directory that Ray Tune persists as a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "state.pt"


@dataclass
class TrainerState:
    epoch: int  # last completed epoch, 1-based
    model: dict[str, Any]
    optimizer: dict[str, Any]
    knobs: dict[str, Any]  # enough to rebuild the model without the sweep file
    shape: dict[str, int]  # num_features, num_classes
    rng: torch.Tensor  # torch's CPU RNG (dropout masks): a resumed trial replays exactly


def save_state(state: TrainerState, directory: str | Path) -> Path:
    path = Path(directory) / STATE_FILE
    torch.save(state.__dict__, path)
    return path


def load_state(directory: str | Path) -> TrainerState:
    # weights_only: a checkpoint is data, never code to execute.
    raw = torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)
    return TrainerState(**raw)
