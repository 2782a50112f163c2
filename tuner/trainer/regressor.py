"""`builtin:regressor`: the same MLP or CNN bodies with a one-output regression head."""

from __future__ import annotations

from typing import Any

from tuner.trainer.ddp_trial import train_worker
from tuner.trainer.tune_trial import train


def train_regressor(config: dict[str, Any]) -> None:
    train(config, "regression")


def train_regressor_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker of a multi-worker trial (tuner.trainer.ddp_trial)."""
    train_worker(loop_config, "regression")
