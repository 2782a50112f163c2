"""`builtin:classifier`: an MLP or CNN classifier; see tuner.trainer.knobs for its knobs.

The sweep's driver imports this module to hand Ray the trainable, and never runs it:
the training machinery (torch) is imported in the trial's own process, where the
function runs, not in the driver's start (a second or more of it on 2 cores).
"""

from __future__ import annotations

from typing import Any


def train_classifier(config: dict[str, Any]) -> None:
    from tuner.trainer.tune_trial import train

    train(config, "classification")


def train_classifier_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker of a multi-worker trial (tuner.trainer.ddp_trial)."""
    from tuner.trainer.ddp_trial import train_worker

    train_worker(loop_config, "classification")
