"""The built-in trainers as a Ray Tune trial: report every epoch, checkpoint when the
plan says so (tuner.trainer.checkpoint_policy), and at once on a spot notice.

On a notice (tuner.trainer.notices) the trial checkpoints at the next optimizer step,
inside its epoch, tells the watcher, and waits for its node to go: anything it trained
after that checkpoint would be lost with the node. Under `cv_folds` the folds' epochs
end together, so the trial checkpoints at the end of the epoch in progress instead.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from typing import Any

from ray import tune

from tuner.trainer.checkpoint import TrainerState, load_state, save_state
from tuner.trainer.checkpoint_policy import CheckpointPlan, without_plan
from tuner.trainer.data import Task
from tuner.trainer.loop import run_epochs
from tuner.trainer.notice_checkpoint import load_mid_epoch, save_mid_epoch
from tuner.trainer.notices import NoticeListener, listen, stop_listening


class NoticeCheckpoints:
    """The loop's mid-epoch checkpoints, asked for by this trial's spot notices."""

    def __init__(self, listener: NoticeListener, went_on_from: str | None) -> None:
        self.listener = listener
        self.went_on_from = went_on_from  # the id of the Tune checkpoint training is past
        self.answered = False  # this notice has its checkpoint

    def pending(self) -> bool:
        return not self.answered and self.listener.noticed()

    def save(self, state: TrainerState) -> None:
        save_mid_epoch(state, self.went_on_from)
        self.checkpointed()

    def checkpointed(self) -> None:
        self.answered = True
        self.listener.saved()
        self.listener.wait_for_the_end()


def restored() -> tuple[TrainerState | None, str | None]:
    """Where a (re)started trial goes on from (Tune's checkpoint, or the mid-epoch one
    taken after it), and the id of that Tune checkpoint."""
    resume = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            resume = load_state(directory)
    went_on_from = resume.checkpoint_id if resume is not None else None
    return load_mid_epoch(went_on_from) or resume, went_on_from


def train(config: dict[str, Any], task: Task) -> None:
    """Ray Tune trainable body for the built-in trainers."""
    plan = CheckpointPlan.from_config(config)
    resume, went_on_from = restored()
    notices = NoticeCheckpoints(listen(tune.get_context().get_trial_id()), went_on_from)
    last_saved = time.monotonic()
    try:
        for epoch in run_epochs(without_plan(config), task, resume, notices):
            noticed = notices.pending()  # cv_folds: the epoch's end is the first chance
            seconds = time.monotonic() - last_saved
            if noticed or plan.due(epoch.number, seconds, last=epoch.last):
                state = epoch.state()
                state.checkpoint_id = notices.went_on_from = uuid.uuid4().hex
                with tempfile.TemporaryDirectory(prefix="tuner-ckpt-") as directory:
                    save_state(state, directory)
                    checkpoint = tune.Checkpoint.from_directory(directory)
                    tune.report(epoch.metrics, checkpoint=checkpoint)
                last_saved = time.monotonic()
                if noticed:
                    notices.checkpointed()
            else:
                tune.report(epoch.metrics)
            if plan.ends_after(epoch.number):  # ASHA's max_t: no epoch past it
                break
    finally:
        stop_listening()
