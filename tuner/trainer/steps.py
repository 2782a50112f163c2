"""One pass over the training data, in optimizer steps that can stop and resume.

A spot interruption notice asks a trial to checkpoint now, not at its epoch's end: the
pass stops at the next optimizer step's boundary, hands out where it stands
(`EpochPosition`), and a restarted trial starts the same epoch from there, drawing the
same batches, augmentations and mixup pairs as if it had never stopped.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from tuner.trainer.augment import augment, mixup
from tuner.trainer.distributed import ALONE, Shard
from tuner.trainer.knobs import ClassifierKnobs, TrainerKnobs
from tuner.trainer.losses import LossFn, l1_penalty
from tuner.trainer.transfer import keep_frozen_norms_in_eval


class TrainingDiverged(RuntimeError):
    """The loss stopped being a finite number: the trial fails with this reason."""


@dataclass
class EpochPosition:
    """Where a pass stands between two optimizer steps."""

    next_sample: int  # offset in the epoch's sample order of the first batch not yet trained
    generator: Tensor  # the epoch's generator after the batches done (augment, mixup)
    loss_sum: float  # the batches done: their summed loss, weighted by their sizes

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# After each optimizer step: does the caller want the position now? (cheap: every step)
StepCheck = Callable[[], bool]
# Given the position it wanted; training goes on when it returns.
PositionSink = Callable[[EpochPosition], None]


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    # bfloat16 needs no loss scaling; on the CPU autocast buys nothing here.
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def batches(
    order: Tensor, batch_size: int, accumulate: int, first_sample: int = 0, smallest: int = 1
) -> Iterator[tuple[Tensor, float, bool]]:
    """Each batch's sample indices, its share of its optimizer step, and whether that
    step follows it, from `first_sample` (a step's boundary) on.

    `accumulate` batches make one step. A batch's loss is weighted by its share of its
    group's samples, so the step follows the mean gradient over the group: one batch of
    `accumulate * batch_size` for plain SGD, and a short last group still steps at full
    strength. Groups end with the epoch, so a resumed trial replays the same steps.

    A last batch of fewer than `smallest` samples joins the one before it: batch norm
    cannot train on one sample (torch raises), and 106 rows in batches of 15 leave one.
    """
    n = len(order)
    count = batch_count(n, batch_size, smallest)
    for i in range(first_sample // batch_size, count):
        start, end = i * batch_size, n if i == count - 1 else (i + 1) * batch_size
        group = i // accumulate
        group_start = group * accumulate * batch_size
        group_end = (
            n if (group + 1) * accumulate >= count else group_start + accumulate * batch_size
        )
        yield order[start:end], (end - start) / (group_end - group_start), end == group_end


def batch_count(n: int, batch_size: int, smallest: int = 1) -> int:
    """Batches in an epoch of `n` samples: a last one under `smallest` joins the one before."""
    count = math.ceil(n / batch_size)
    if count > 1 and n - (count - 1) * batch_size < smallest:
        count -= 1
    return count


def smallest_batch(model: nn.Module, shard: Shard = ALONE) -> int:
    """The fewest samples a training batch may have: 2 on each worker with batch norm
    (its statistics need two), else 1."""
    norms = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    return 2 * shard.world if norms else 1


def optimizer_steps(n: int, knobs: TrainerKnobs, smallest: int = 1) -> int:
    """Optimizer steps in an epoch of `n` training samples."""
    return math.ceil(batch_count(n, knobs.batch_size, smallest) / knobs.accumulate_steps)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    data: tuple[Tensor, Tensor],
    knobs: TrainerKnobs,
    generator: torch.Generator,
    device: torch.device,
    schedule_per_step: torch.optim.lr_scheduler.LRScheduler | None = None,
    *,
    start: EpochPosition | None = None,
    wants_position: StepCheck | None = None,
    take_position: PositionSink | None = None,
    shard: Shard = ALONE,
) -> float:
    """One pass over the training data; the mean training loss (with the L1 penalty).

    `generator` is the epoch's, freshly seeded: its first draw orders the samples. With
    `start` the pass goes on from that position; `wants_position` is asked after every
    optimizer step, and when it says so `take_position` gets where the pass stands.
    Under a `shard` of several workers `model` is DDP-wrapped and this worker trains its
    part of every batch (tuner.trainer.distributed); the loss returned is all workers'.
    """
    model.train()
    keep_frozen_norms_in_eval(model)
    features, labels = data
    mix = isinstance(knobs, ClassifierKnobs) and knobs.mixup_alpha > 0
    # Drawn on the CPU, as every random draw here: the same batches wherever the data is.
    order = torch.randperm(len(labels), generator=generator).to(labels.device)
    total = torch.zeros((), device=device)
    first_sample = 0
    if start is not None:
        generator.set_state(start.generator)
        total += start.loss_sum
        first_sample = start.next_sample
    optimizer.zero_grad(set_to_none=True)
    done = first_sample
    smallest = smallest_batch(model, shard)
    steps = batches(order, knobs.batch_size, knobs.accumulate_steps, first_sample, smallest)
    for batch, share, step_after in steps:
        done += len(batch)
        index = shard.part(batch)
        # DDP averages over workers: weight this part by its share of the batch, times
        # the workers, and the average is the whole batch's mean gradient.
        if not shard.alone:
            share = share * len(index) / len(batch) * shard.world
        x = augment(features[index], knobs, generator).to(device, non_blocking=True)
        y = labels[index].to(device, non_blocking=True)
        with autocast(device, knobs.amp):
            if mix:
                mixed = mixup(x, y, knobs.mixup_alpha, generator)  # type: ignore[attr-defined]
                outputs = model(mixed.features)
                loss = mixed.weight * loss_fn(outputs, mixed.labels) + (1 - mixed.weight) * loss_fn(
                    outputs, mixed.partner_labels
                )
            elif len(index) == 0:
                # A short last batch left this worker nothing; DDP still needs its
                # backward pass: a zero loss through every parameter.
                loss = model(x).sum() * 0.0
            else:
                loss = loss_fn(model(x), y)
            if knobs.l1:
                loss = loss + knobs.l1 * l1_penalty(model)
        (loss * share if share != 1 else loss).backward()
        # Summed on the device: one host sync per epoch, not per batch.
        total += loss.detach().float() * len(index)
        if step_after:
            if knobs.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), knobs.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if schedule_per_step is not None:
                schedule_per_step.step()
            if wants_position is not None and take_position is not None and wants_position():
                take_position(EpochPosition(done, generator.get_state(), float(total)))
    mean = float(shard.total(total)) / len(labels)
    if not math.isfinite(mean):
        raise TrainingDiverged(
            f"training loss became {mean} (exploding gradients?): lower lr, or set grad_clip"
        )
    return mean
