"""`builtin:classifier`: an MLP or CNN classifier; see tuner.trainer.knobs for its knobs."""

from __future__ import annotations

from typing import Any

from tuner.trainer.ddp_trial import train_worker
from tuner.trainer.tune_trial import train


def train_classifier(config: dict[str, Any]) -> None:
    train(config, "classification")


def train_classifier_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker of a multi-worker trial (tuner.trainer.ddp_trial)."""
    train_worker(loop_config, "classification")
