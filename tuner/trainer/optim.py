"""Optimizers and learning-rate schedules by name, built from torch.optim."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    CyclicLR,
    LinearLR,
    LRScheduler,
    OneCycleLR,
    SequentialLR,
    StepLR,
)
from torch.optim.optimizer import ParamsT

from tuner.trainer.knobs import TrainerKnobs

WARMUP_START_FACTOR = 0.1  # warm-up climbs linearly from lr/10 to lr
COSINE_FLOOR = 0.01  # cosine anneals to lr/100: a last epoch at lr 0 would be wasted
CYCLIC_FLOOR = 0.1  # the triangular cycle runs between lr/10 and lr (its first, triangular2)


def build_optimizer(parameters: ParamsT, knobs: TrainerKnobs) -> torch.optim.Optimizer:
    """The knobs' optimizer over `parameters`: tensors, or groups that may set their own
    lr (a fine-tuned head's)."""
    if knobs.optimizer in ("sgd", "momentum", "nesterov"):
        return torch.optim.SGD(
            parameters,
            lr=knobs.lr,
            momentum=0.0 if knobs.optimizer == "sgd" else knobs.momentum,
            nesterov=knobs.optimizer == "nesterov",
            weight_decay=knobs.weight_decay,
        )
    if knobs.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            parameters, lr=knobs.lr, momentum=knobs.momentum, weight_decay=knobs.weight_decay
        )
    optimizer = torch.optim.AdamW if knobs.optimizer == "adamw" else torch.optim.Adam
    return optimizer(
        parameters, lr=knobs.lr, betas=(knobs.beta1, knobs.beta2), weight_decay=knobs.weight_decay
    )


def build_schedule(
    optimizer: torch.optim.Optimizer, knobs: TrainerKnobs, steps_per_epoch: int
) -> tuple[LRScheduler, bool]:
    """The schedule, and whether it steps per optimizer step (one_cycle, cyclic) rather
    than per epoch. `steps_per_epoch` counts optimizer steps, not batches: with gradient
    accumulation a cycle's length in epochs stays what the knobs say.

    Per-epoch schedules are stepped after each epoch, so epoch e (1-based) trains at the
    schedule's value e-1: cosine reaches its minimum in the last epoch.
    """
    # Each parameter group's own peak: a fine-tuned head learns at lr * head_lr_mult.
    peaks = [float(group["lr"]) for group in optimizer.param_groups]
    if knobs.lr_schedule == "one_cycle":
        return (
            OneCycleLR(
                optimizer,
                max_lr=peaks,
                epochs=knobs.epochs,
                steps_per_epoch=steps_per_epoch,
            ),
            True,
        )
    if knobs.lr_schedule == "cyclic":
        # Smith's triangular policy (2017): up from lr/10 to lr over half a cycle, down
        # over the other half, again and again; triangular2 halves the height above lr/10
        # every cycle, an anneal that keeps the restarts. Momentum is left alone: torch
        # cycles it only for optimizers that have one, which would make the knob mean two
        # things.
        half_cycle = max(1, round(knobs.cycle_epochs * steps_per_epoch / 2))
        return (
            CyclicLR(
                optimizer,
                base_lr=[peak * CYCLIC_FLOOR for peak in peaks],
                max_lr=peaks,
                step_size_up=half_cycle,
                mode=knobs.cyclic_mode,
                cycle_momentum=False,
            ),
            True,
        )
    decay_epochs = knobs.epochs - knobs.warmup_epochs
    main: LRScheduler
    if knobs.lr_schedule == "cosine":
        # T_max is reached at the last epoch's index, so the last epoch trains at eta_min.
        main = CosineAnnealingLR(
            optimizer, T_max=max(1, decay_epochs - 1), eta_min=knobs.lr * COSINE_FLOOR
        )
    elif knobs.lr_schedule == "step":
        main = StepLR(optimizer, step_size=knobs.step_size, gamma=knobs.gamma)
    else:
        main = ConstantLR(optimizer, factor=1.0, total_iters=0)
    if not knobs.warmup_epochs:
        return main, False
    warmup = LinearLR(
        optimizer,
        start_factor=WARMUP_START_FACTOR,
        end_factor=1.0,
        total_iters=knobs.warmup_epochs,
    )
    return SequentialLR(optimizer, [warmup, main], milestones=[knobs.warmup_epochs]), False
