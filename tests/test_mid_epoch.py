"""A checkpoint inside an epoch (a spot notice's): the trial goes on from it exactly.

The built-in trainer stops between two optimizer steps, hands out its state with its
place in the epoch, and a trial restarted from that state ends with the same weights,
bit for bit on the CPU, and reports the same epochs, as one that never stopped.
"""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
import torch

from tuner.trainer.checkpoint import TrainerState, as_dict
from tuner.trainer.checkpoint_policy import RESUMED_WITHIN_EPOCH
from tuner.trainer.data import load_splits
from tuner.trainer.knobs import ClassifierKnobs
from tuner.trainer.loop import run_epochs
from tuner.trainer.steps import optimizer_steps

# Everything that draws random numbers or keeps state inside an epoch: dropout (torch's
# RNG), augmentation and mixup (the epoch's generator), batch norm's statistics, a
# per-step schedule, gradient accumulation and Adam's moments.
CONFIG: dict[str, Any] = {
    "dataset": "digits",
    "epochs": 3,
    "batch_size": 32,
    "accumulate_steps": 2,
    "hidden": 32,
    "dropout": 0.2,
    "batch_norm": True,
    "input_noise": 0.1,
    "mixup_alpha": 0.4,
    "lr_schedule": "one_cycle",
    "seed": 7,
}

TRAIN_ROWS = len(load_splits(ClassifierKnobs(dataset="digits"), "classification").train.labels)


class Preempted(Exception):
    """The node went after the checkpoint."""


class NoticeAtStep:
    """A notice that arrives before optimizer step `at_step` (counted over the trial)."""

    def __init__(self, at_step: int) -> None:
        self.at_step, self.steps = at_step, 0
        self.kept: TrainerState | None = None

    def pending(self) -> bool:
        self.steps += 1
        return self.steps == self.at_step

    def save(self, state: TrainerState) -> None:
        buffer = io.BytesIO()  # through bytes, as storage keeps it: no shared tensors
        torch.save(as_dict(state), buffer)
        buffer.seek(0)
        self.kept = TrainerState(**torch.load(buffer, weights_only=True))
        raise Preempted


def train(
    config: dict[str, Any], resume: TrainerState | None = None, notice: NoticeAtStep | None = None
) -> tuple[list[dict[str, Any]], TrainerState]:
    reports, last = [], None
    for epoch in run_epochs(config, "classification", resume, notice):
        reports.append(epoch.metrics)
        last = epoch.state()
    assert last is not None
    return reports, last


@pytest.mark.parametrize("config", [CONFIG, {**CONFIG, "accumulate_steps": 1, "mixup_alpha": 0}])
def test_a_trial_resumed_inside_an_epoch_ends_as_one_that_never_stopped(
    config: dict[str, Any],
) -> None:
    straight, straight_end = train(config)
    steps_per_epoch = optimizer_steps(TRAIN_ROWS, ClassifierKnobs.model_validate(config))
    # The notice comes 5 steps into epoch 2.
    notice = NoticeAtStep(steps_per_epoch + 5)
    with pytest.raises(Preempted):
        train(config, notice=notice)
    kept = notice.kept
    assert kept is not None and kept.epoch == 1 and kept.within_epoch is not None
    assert kept.within_epoch["next_sample"] == 5 * 32 * config["accumulate_steps"]

    resumed, resumed_end = train(config, resume=kept)
    # Epochs 2 and 3 reported again from the middle of 2, with the same numbers.
    assert [r["epoch"] for r in resumed] == [2, 3]
    for before, after in zip(straight[1:], resumed, strict=True):
        for key in ("train_loss", "val_loss", "val_accuracy", "lr"):
            assert after[key] == before[key], key
    assert 0 < resumed[0][RESUMED_WITHIN_EPOCH] < resumed[0]["epoch_time_s"]
    assert RESUMED_WITHIN_EPOCH not in resumed[1]
    for name, weights in straight_end.model.items():
        assert torch.equal(resumed_end.model[name], weights), name
    assert resumed_end.optimizer["state"].keys() == straight_end.optimizer["state"].keys()
    for key, moments in straight_end.optimizer["state"].items():
        for name, value in moments.items():
            assert torch.equal(resumed_end.optimizer["state"][key][name], value), (key, name)


def test_without_a_notice_no_mid_epoch_state_is_taken() -> None:
    notice = NoticeAtStep(at_step=10**9)
    reports, end = train({**CONFIG, "epochs": 1}, notice=notice)
    assert notice.kept is None and end.within_epoch is None
    assert notice.steps == math.ceil(TRAIN_ROWS / 64)  # asked once per optimizer step
    assert RESUMED_WITHIN_EPOCH not in reports[0]
