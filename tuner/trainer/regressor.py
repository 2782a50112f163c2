"""`builtin:regressor`: the same MLP or CNN bodies with a one-output regression head.

Like tuner.trainer.classifier, the training machinery is imported where it runs.
"""

from __future__ import annotations

from typing import Any


def train_regressor(config: dict[str, Any]) -> None:
    from tuner.trainer.tune_trial import train

    train(config, "regression")


def train_regressor_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker of a multi-worker trial (tuner.trainer.ddp_trial)."""
    from tuner.trainer.ddp_trial import train_worker

    train_worker(loop_config, "regression")
