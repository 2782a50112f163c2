"""`builtin:classifier`: an MLP or CNN classifier; see tuner.trainer.knobs for its knobs."""

from __future__ import annotations

from typing import Any

from tuner.trainer.tune_trial import train


def train_classifier(config: dict[str, Any]) -> None:
    train(config, "classification")
