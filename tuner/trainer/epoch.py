"""What a training loop yields after each epoch, and the early stopping that ends it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tuner.trainer.checkpoint import TrainerState


@dataclass
class EarlyStopping:
    """Stop when validation loss has not improved by `min_delta` for `patience` epochs."""

    patience: int
    min_delta: float
    best: float = math.inf
    stale_epochs: int = 0

    def update(self, val_loss: float) -> bool:
        """Record an epoch's validation loss; True when training should stop."""
        if val_loss < self.best - self.min_delta:
            self.best, self.stale_epochs = val_loss, 0
        else:
            self.stale_epochs += 1
        return 0 < self.patience <= self.stale_epochs

    def reason(self) -> str:
        return (
            f"early stopping: val_loss did not improve by more than {self.min_delta:g} "
            f"for {self.patience} epochs (best {self.best:.6g})"
        )


@dataclass
class Epoch:
    """One finished epoch: its metrics, and what a checkpoint of it would hold."""

    metrics: dict[str, Any]
    number: int  # 1-based
    stop: bool  # the trainer's own early stopping ends the trial after this epoch
    last: bool  # no epoch follows: the trainer stopped early, or this is the last epoch
    # Built when called, so callers that keep no checkpoints skip copying weights and
    # optimizer state. Valid until the generator resumes: the next epoch trains on.
    state: Callable[[], TrainerState]
