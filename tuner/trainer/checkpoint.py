"""Trainer state <-> a directory that Ray Tune persists as a checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "state.pt"


@dataclass
class TrainerState:
    task: str  # "classification" | "regression"
    epoch: int  # last completed epoch, 1-based
    model: dict[str, Any]
    optimizer: dict[str, Any]
    schedule: dict[str, Any]
    stopper: dict[str, Any]  # early-stopping counters
    rng: torch.Tensor  # torch's CPU RNG (dropout masks): a resumed trial replays exactly
    knobs: dict[str, Any]  # enough to rebuild the model without the sweep file
    feature_shape: list[int]
    outputs: int


def save_state(state: TrainerState, directory: str | Path) -> Path:
    path = Path(directory) / STATE_FILE
    torch.save(asdict(state), path)
    return path


def load_state(directory: str | Path) -> TrainerState:
    # weights_only: a checkpoint is data, never code to execute.
    raw = torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)
    return TrainerState(**raw)
