"""Trainer state <-> a directory that Ray Tune persists as a checkpoint.

A cross-validated trial's (`cv_folds`) is fold 0's state, as any other trial's (so
exports, fine-tuning and `tuner best` read fold 0's model), with the trial's knobs and
early stopping, and every fold's own state in `folds`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from tuner.trainer.classes import ClassName

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
    # cv_folds: each fold's state, fold 0's too (its tensors saved once), as asdict's
    folds: list[dict[str, Any]] | None = None
    # Taken between two optimizer steps of epoch `epoch + 1` (a spot notice): where that
    # epoch stands (tuner.trainer.steps.EpochPosition), its first lr and seconds so far.
    within_epoch: dict[str, Any] | None = None
    # A Tune checkpoint's own id: a mid-epoch checkpoint names the one it went on from.
    checkpoint_id: str | None = None
    # A classifier's label value for each output 0..K-1 (sorted, as in the data: text,
    # numbers, folder names); None for a regressor, and in a checkpoint written before
    # class names were kept.
    classes: list[ClassName] | None = None


def as_dict(state: TrainerState) -> dict[str, Any]:
    """Shallow, unlike dataclasses.asdict: tensors shared with a fold are saved once."""
    return {field.name: getattr(state, field.name) for field in fields(state)}


def save_state(state: TrainerState, directory: str | Path) -> Path:
    path = Path(directory) / STATE_FILE
    torch.save(as_dict(state), path)
    return path


def load_state(directory: str | Path) -> TrainerState:
    # weights_only: a checkpoint is data, never code to execute.
    raw = torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)
    return TrainerState(**raw)  # one written before `folds` or `classes` has none
