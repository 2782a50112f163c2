"""`builtin:regressor`: the same MLP or CNN bodies with a one-output regression head."""

from __future__ import annotations

from typing import Any

from tuner.trainer.tune_trial import train


def train_regressor(config: dict[str, Any]) -> None:
    train(config, "regression")
