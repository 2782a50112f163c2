"""Going on from a checkpoint: exactly, or with new hyperparameters (a PBT exploit).

A checkpoint written by the same trial with the same knobs resumes bit for bit: the
optimizer, the schedule and the RNG are loaded as saved. One taken from another trial
under population-based training comes with perturbed knobs (`MUTABLE_KNOBS`): the
weights, the optimizer's per-parameter state (moments, momentum buffers) and the
early-stopping counters carry over, and the new values take effect from the next epoch:
the optimizer's parameter groups get them, and the schedule is rebuilt for the new
learning rate and advanced to where the checkpoint left off.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from tuner.trainer.checkpoint import TrainerState
from tuner.trainer.knobs import TrainerKnobs


def changed_knobs(saved: Mapping[str, Any], knobs: TrainerKnobs) -> dict[str, tuple[Any, Any]]:
    """The mutable knobs whose values differ from the checkpoint's: name -> (old, new)."""
    current = knobs.model_dump()
    return {
        name: (saved.get(name), current[name])
        for name in sorted(knobs.mutable())
        if saved.get(name) != current[name]
    }


def resume_training(
    resume: TrainerState,
    knobs: TrainerKnobs,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: LRScheduler,
    schedule_steps_done: int,
) -> None:
    """Load `resume` into freshly built `model`, `optimizer` and `schedule` (built from
    `knobs`). `schedule_steps_done`: how often the schedule had stepped at the checkpoint
    (epochs, or optimizer steps for a per-batch schedule)."""
    model.load_state_dict(resume.model)
    torch.set_rng_state(resume.rng)
    changed = changed_knobs(resume.knobs, knobs)
    if not changed:
        optimizer.load_state_dict(resume.optimizer)
        schedule.load_state_dict(resume.schedule)
        return
    # The new learning rate's schedule, at the checkpoint's point in it.
    with warnings.catch_warnings():
        # "step() before optimizer.step()": no optimizer step is due here.
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(schedule_steps_done):
            schedule.step()
    if "optimizer" in changed:
        return  # another optimizer's moments mean nothing to this one: it starts afresh
    settings = [
        {key: value for key, value in group.items() if key != "params"}
        for group in optimizer.param_groups
    ]
    optimizer.load_state_dict(resume.optimizer)
    for group, new in zip(optimizer.param_groups, settings, strict=True):
        group.update(new)
