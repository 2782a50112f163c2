"""The training loop shared by the built-in classifier and regressor.

Reports every epoch with `ray.tune.report` and writes a checkpoint (model, optimizer,
schedule, early-stopping state, RNG) when the sweep's checkpoint plan says so, so a
restarted trial resumes after its last checkpoint exactly as if it had never stopped.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
import torch
from ray import tune
from torch import Tensor, nn

from tuner.trainer.augment import augment, mixup
from tuner.trainer.checkpoint import TrainerState, load_state, save_state
from tuner.trainer.checkpoint_policy import CheckpointPlan, without_plan
from tuner.trainer.data import Arrays, Splits, Task, load_splits
from tuner.trainer.epoch import EarlyStopping, Epoch
from tuner.trainer.folds import fold_seed, run_folds
from tuner.trainer.knobs import KNOBS_BY_TASK, ClassifierKnobs, TrainerKnobs
from tuner.trainer.losses import LossFn, balanced_class_weights, build_loss, l1_penalty
from tuner.trainer.models import build_model
from tuner.trainer.optim import build_optimizer, build_schedule
from tuner.trainer.resume import resume_training
from tuner.trainer.transfer import (
    keep_frozen_norms_in_eval,
    parameter_groups,
    start_from_checkpoint,
)


class TrainingDiverged(RuntimeError):
    """The loss stopped being a finite number: the trial fails with this reason."""


def pick_device() -> torch.device:
    # Ray sets CUDA_VISIBLE_DEVICES to the GPUs it gave this trial (none when gpu: 0).
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def num_outputs(splits: Splits) -> int:
    return splits.num_classes if splits.num_classes else 1


def to_tensors(arrays: Arrays) -> tuple[Tensor, Tensor]:
    return torch.from_numpy(arrays.features), torch.from_numpy(arrays.labels)


def _autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    # bfloat16 needs no loss scaling; on the CPU autocast buys nothing here.
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _batches(
    n: int, batch_size: int, accumulate: int, generator: torch.Generator
) -> Iterator[tuple[Tensor, float, bool]]:
    """Each batch's sample indices, its share of its optimizer step, and whether that
    step follows it.

    `accumulate` batches make one step. A batch's loss is weighted by its share of its
    group's samples, so the step follows the mean gradient over the group: one batch of
    `accumulate * batch_size` for plain SGD, and a short last group still steps at full
    strength. Groups end with the epoch, so a resumed trial replays the same steps.
    """
    order = torch.randperm(n, generator=generator)
    group = batch_size * accumulate
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size]
        group_start = start - start % group
        group_size = min(n, group_start + group) - group_start
        yield index, len(index) / group_size, start + len(index) == group_start + group_size


def optimizer_steps(n: int, knobs: TrainerKnobs) -> int:
    """Optimizer steps in an epoch of `n` training samples."""
    return math.ceil(math.ceil(n / knobs.batch_size) / knobs.accumulate_steps)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    data: tuple[Tensor, Tensor],
    knobs: TrainerKnobs,
    generator: torch.Generator,
    device: torch.device,
    schedule_per_step: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> float:
    """One pass over the training data; the mean training loss (with the L1 penalty)."""
    model.train()
    keep_frozen_norms_in_eval(model)
    features, labels = data
    mix = isinstance(knobs, ClassifierKnobs) and knobs.mixup_alpha > 0
    total = torch.zeros((), device=device)
    optimizer.zero_grad(set_to_none=True)
    batches = _batches(len(labels), knobs.batch_size, knobs.accumulate_steps, generator)
    for index, share, step_after in batches:
        x = augment(features[index], knobs, generator).to(device, non_blocking=True)
        y = labels[index].to(device, non_blocking=True)
        with _autocast(device, knobs.amp):
            if mix:
                mixed = mixup(x, y, knobs.mixup_alpha, generator)  # type: ignore[attr-defined]
                outputs = model(mixed.features)
                loss = mixed.weight * loss_fn(outputs, mixed.labels) + (1 - mixed.weight) * loss_fn(
                    outputs, mixed.partner_labels
                )
            else:
                loss = loss_fn(model(x), y)
            if knobs.l1:
                loss = loss + knobs.l1 * l1_penalty(model)
        (loss * share if share != 1 else loss).backward()
        if step_after:
            if knobs.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), knobs.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if schedule_per_step is not None:
                schedule_per_step.step()
        # Summed on the device: one host sync per epoch, not per batch.
        total += loss.detach().float() * len(index)
    mean = float(total) / len(labels)
    if not math.isfinite(mean):
        raise TrainingDiverged(
            f"training loss became {mean} (exploding gradients?): lower lr, or set grad_clip"
        )
    return mean


@torch.no_grad()
def predict(model: nn.Module, features: Tensor, device: torch.device, batch: int = 4096) -> Tensor:
    """Model outputs in eval mode (dropout off, batch norm on running statistics)."""
    model.eval()
    chunks = [
        model(features[i : i + batch].to(device)).float().cpu()
        for i in range(0, len(features), batch)
    ]
    return torch.cat(chunks)


def score(
    outputs: Tensor, labels: Tensor, loss_fn: LossFn, splits: Splits, prefix: str
) -> dict[str, float]:
    """Loss and the task's metric(s) of outputs on one split."""
    metrics = {f"{prefix}_loss": float(loss_fn(outputs, labels))}
    if splits.num_classes:
        metrics[f"{prefix}_accuracy"] = float((outputs.argmax(dim=1) == labels).float().mean())
        return metrics
    # Regression targets are standardized for training; report in the data's units.
    predicted = outputs.squeeze(1).numpy().astype(np.float64) * splits.target_std
    truth = labels.numpy().astype(np.float64) * splits.target_std
    residual = float(((predicted - truth) ** 2).sum())
    spread = float(((truth - truth.mean()) ** 2).sum()) or 1.0
    metrics[f"{prefix}_rmse"] = math.sqrt(residual / len(truth))
    metrics[f"{prefix}_r2"] = 1.0 - residual / spread
    return metrics


def class_report(outputs: Tensor, labels: Tensor, prefix: str) -> dict[str, float]:
    """Macro precision, recall and F1: reported once, at a trial's end."""
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, _ = precision_recall_fscore_support(
        labels.numpy(), outputs.argmax(dim=1).numpy(), average="macro", zero_division=0
    )
    return {
        f"{prefix}_precision": float(precision),
        f"{prefix}_recall": float(recall),
        f"{prefix}_f1": float(f1),
    }


def run_epochs(config: dict[str, Any], task: Task, resume: TrainerState | None) -> Iterator[Epoch]:
    """Train the built-in model on `config`, yielding after every epoch.

    With `resume`, training goes on from that checkpoint's next epoch exactly as if it
    had never stopped. The caller decides what an epoch's end means: Ray Tune reports
    and checkpoints it (`train`); the benchmarks drive it from plain Optuna.

    A `schedule` trains in segments: where its values change, the next segment goes on
    from the last one's state with the new values, as a PBT trial goes on from a copied
    checkpoint (tuner.trainer.resume). Under `cv_folds` a segment trains every fold in
    lockstep and yields their combined epochs (tuner.trainer.folds).
    """
    knobs = KNOBS_BY_TASK[task].model_validate(config)
    start = resume.epoch + 1 if resume is not None else 1
    changes = sorted(epoch for epoch in knobs.schedule or {} if epoch > start)
    run = _run_segment if knobs.cv_folds == 1 else partial(run_folds, _run_segment)
    for end in [*(epoch - 1 for epoch in changes), knobs.epochs]:
        segment = {**config, "schedule": None, **knobs.at_epoch(start)}
        for epoch in run(segment, task, resume):
            yield epoch
            if epoch.stop:
                return
            if epoch.number == end:
                resume = epoch.state()  # its tensors stay as they are: this segment ends
                break
        start = end + 1


def _run_segment(
    config: dict[str, Any], task: Task, resume: TrainerState | None, fold: int | None = None
) -> Iterator[Epoch]:
    knobs = KNOBS_BY_TASK[task].model_validate(config)
    device = pick_device()
    splits = load_splits(knobs, task, fold)  # fold: one of cv_folds (tuner.trainer.folds)
    train_data, val_data = to_tensors(splits.train), to_tensors(splits.val)
    seed = fold_seed(knobs.seed, fold)
    torch.manual_seed(seed)
    model = build_model(splits.feature_shape, num_outputs(splits), knobs).to(device)
    start_from_checkpoint(model, knobs, splits.feature_shape, resuming=resume is not None)
    optimizer = build_optimizer(parameter_groups(model, knobs), knobs)
    num_params = sum(parameter.numel() for parameter in model.parameters())
    steps_per_epoch = optimizer_steps(len(train_data[1]), knobs)
    schedule, per_batch = build_schedule(optimizer, knobs, steps_per_epoch)
    loss_fn = build_loss(knobs)  # scores validation (and test) as they are
    train_loss_fn = loss_fn
    if isinstance(knobs, ClassifierKnobs) and knobs.class_weights == "balanced":
        weights = balanced_class_weights(train_data[1], splits.num_classes).to(device)
        train_loss_fn = build_loss(knobs, weights)
    stopper = EarlyStopping(knobs.patience, knobs.min_delta)

    first_epoch = 1
    if resume is not None:
        steps_done = resume.epoch * (steps_per_epoch if per_batch else 1)
        resume_training(resume, knobs, model, optimizer, schedule, steps_done)
        stopper = EarlyStopping(**resume.stopper)
        first_epoch = resume.epoch + 1

    for epoch in range(first_epoch, knobs.epochs + 1):
        started = time.perf_counter()
        lr = float(optimizer.param_groups[0]["lr"])
        # Batch order and augmentation depend on (seed, epoch): a resumed trial replays.
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        train_loss = train_epoch(
            model, optimizer, train_loss_fn, train_data, knobs, generator, device,
            schedule if per_batch else None,
        )  # fmt: skip
        if not per_batch:
            schedule.step()
        predict_started = time.perf_counter()
        outputs = predict(model, val_data[0], device)  # .cpu() waits for a GPU to finish
        inference_s = time.perf_counter() - predict_started
        val = score(outputs, val_data[1], loss_fn, splits, "val")
        stop = stopper.update(val["val_loss"])
        if (stop or epoch == knobs.epochs) and splits.num_classes:
            val |= class_report(outputs, val_data[1], "val")
        metrics: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": train_loss,
            **val,
            "lr": lr,
            "epoch_time_s": time.perf_counter() - started,
            # What a model costs to keep and to run: objectives to trade accuracy for.
            "num_params": num_params,
            "inference_ms": 1000 * inference_s / max(1, len(val_data[1])),
        }
        if stop:
            metrics["stop_reason"] = stopper.reason()

        def state(epoch: int = epoch) -> TrainerState:
            return TrainerState(
                task=task,
                epoch=epoch,
                model=model.state_dict(),
                optimizer=optimizer.state_dict(),
                schedule=schedule.state_dict(),
                stopper=stopper.__dict__.copy(),
                rng=torch.get_rng_state(),
                # Every knob, so the model rebuilds without the sweep file; the unused
                # built-in dataset name is left out when the data came from a file.
                knobs=knobs.model_dump(exclude={"dataset"} if knobs.data_path else set()),
                feature_shape=list(splits.feature_shape),
                outputs=num_outputs(splits),
            )

        yield Epoch(metrics, epoch, stop, stop or epoch == knobs.epochs, state)
        if stop:
            return


def train(config: dict[str, Any], task: Task) -> None:
    """Ray Tune trainable body for the built-in trainers: report each epoch, checkpoint
    when the plan says so (see tuner.trainer.checkpoint_policy)."""
    plan = CheckpointPlan.from_config(config)
    resume = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            resume = load_state(directory)
    last_saved = time.monotonic()
    for epoch in run_epochs(without_plan(config), task, resume):
        if not plan.due(epoch.number, time.monotonic() - last_saved, last=epoch.last):
            tune.report(epoch.metrics)
            continue
        with tempfile.TemporaryDirectory(prefix="tuner-ckpt-") as directory:
            save_state(epoch.state(), directory)
            tune.report(epoch.metrics, checkpoint=tune.Checkpoint.from_directory(directory))
        last_saved = time.monotonic()
