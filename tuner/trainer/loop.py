"""The training loop shared by the built-in classifier and regressor.

`run_epochs` trains a config and yields after every epoch what a checkpoint of it would
hold (model, optimizer, schedule, early-stopping state, RNG), so a restarted trial
resumes after its last checkpoint exactly as if it had never stopped; Ray Tune's side
(reports, the checkpoint plan, spot notices) is tuner.trainer.tune_trial.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator
from functools import partial
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from tuner.trainer.checkpoint import TrainerState
from tuner.trainer.checkpoint_policy import RESUMED_WITHIN_EPOCH
from tuner.trainer.data import Arrays, Splits, Task, load_splits
from tuner.trainer.device_data import placed
from tuner.trainer.distributed import ALONE, Shard
from tuner.trainer.epoch import EarlyStopping, Epoch
from tuner.trainer.folds import fold_seed, run_folds
from tuner.trainer.gpu import GpuOutOfMemory, epoch_gpu_figures
from tuner.trainer.knobs import KNOBS_BY_TASK, ClassifierKnobs
from tuner.trainer.losses import LossFn, balanced_class_weights, build_loss, scoring_loss
from tuner.trainer.models import build_model
from tuner.trainer.optim import build_optimizer, build_schedule
from tuner.trainer.resume import resume_training
from tuner.trainer.steps import (
    EpochPosition,
    TrainingDiverged,
    optimizer_steps,
    smallest_batch,
    train_epoch,
)
from tuner.trainer.transfer import parameter_groups, start_from_checkpoint

__all__ = ["TrainingDiverged", "run_epochs", "train_epoch"]


class MidEpochCheckpoints(Protocol):
    """Who asks for a checkpoint inside an epoch (a spot notice), and keeps it."""

    def pending(self) -> bool:
        """Checkpoint at this optimizer step? Asked after every one: must be cheap."""
        ...

    def save(self, state: TrainerState) -> None:
        """Keep the state; training goes on from it when this returns."""
        ...


def pick_device() -> torch.device:
    # Ray sets CUDA_VISIBLE_DEVICES to the GPUs it gave this trial (none when gpu: 0).
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def num_outputs(splits: Splits) -> int:
    return splits.num_classes if splits.num_classes else 1


def to_tensors(arrays: Arrays) -> tuple[Tensor, Tensor]:
    """The arrays as tensors, sharing their memory. The sweep's shared data comes from
    Ray's object store read-only; training never writes to its data in place."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(arrays.features), torch.from_numpy(arrays.labels)


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
    """Macro precision, recall and F1: reported once, at a trial's end.

    As scikit-learn's `precision_recall_fscore_support(average="macro", zero_division=0)`
    computes them (a test holds the two equal), without importing it in every trial
    process: the mean over the classes that are true or predicted, a ratio with a zero
    denominator counting 0."""
    truth, predicted = labels.numpy(), outputs.argmax(dim=1).numpy()
    classes = np.union1d(truth, predicted)
    hits = np.array([np.sum((truth == c) & (predicted == c)) for c in classes], dtype=float)
    said = np.array([np.sum(predicted == c) for c in classes], dtype=float)
    actual = np.array([np.sum(truth == c) for c in classes], dtype=float)
    precision = np.divide(hits, said, out=np.zeros_like(hits), where=said > 0)
    recall = np.divide(hits, actual, out=np.zeros_like(hits), where=actual > 0)
    both = said + actual
    f1 = np.divide(2 * hits, both, out=np.zeros_like(hits), where=both > 0)
    return {
        f"{prefix}_precision": float(precision.mean()),
        f"{prefix}_recall": float(recall.mean()),
        f"{prefix}_f1": float(f1.mean()),
    }


def run_epochs(
    config: dict[str, Any],
    task: Task,
    resume: TrainerState | None,
    mid_epoch: MidEpochCheckpoints | None = None,
    shard: Shard = ALONE,
) -> Iterator[Epoch]:
    """Train the built-in model on `config`, yielding after every epoch.

    With `resume`, training goes on from that checkpoint's next epoch exactly as if it
    had never stopped. The caller decides what an epoch's end means: Ray Tune reports
    and checkpoints it (`train`); the benchmarks drive it from plain Optuna.

    A `schedule` trains in segments: where its values change, the next segment goes on
    from the last one's state with the new values, as a PBT trial goes on from a copied
    checkpoint (tuner.trainer.resume). Under `cv_folds` a segment trains every fold in
    lockstep and yields their combined epochs (tuner.trainer.folds).

    `mid_epoch` may ask for a checkpoint between optimizer steps; `resume` may be one,
    and the epoch it was taken in goes on from there. Under `cv_folds` it is not asked:
    the folds' epochs end together, and the caller checkpoints there.

    `shard`: this process is one of a multi-worker trial's (tuner.trainer.distributed).
    """
    knobs = KNOBS_BY_TASK[task].model_validate(config)
    start = resume.epoch + 1 if resume is not None else 1
    changes = sorted(epoch for epoch in knobs.schedule or {} if epoch > start)
    # Across workers each fold is a model of its own under DDP: every worker builds and
    # steps the folds in the same order, so their collectives pair up.
    run = (
        partial(_run_segment, mid_epoch=mid_epoch, shard=shard)
        if knobs.cv_folds == 1
        else partial(run_folds, partial(_run_segment, shard=shard))
    )
    try:
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
    except torch.cuda.OutOfMemoryError as exc:
        raise GpuOutOfMemory.of(exc) from None


def _run_segment(
    config: dict[str, Any],
    task: Task,
    resume: TrainerState | None,
    fold: int | None = None,
    mid_epoch: MidEpochCheckpoints | None = None,
    shard: Shard = ALONE,
) -> Iterator[Epoch]:
    knobs = KNOBS_BY_TASK[task].model_validate(config)
    device = torch.device(shard.device) if shard.device else pick_device()
    splits = load_splits(knobs, task, fold)  # fold: one of cv_folds (tuner.trainer.folds)
    train_data, val_data = to_tensors(splits.train), to_tensors(splits.val)
    train_data, val_features = placed(train_data, val_data[0], knobs, device)
    seed = fold_seed(knobs.seed, fold)
    torch.manual_seed(seed)
    model = build_model(splits.feature_shape, num_outputs(splits), knobs).to(device)
    start_from_checkpoint(model, knobs, splits.feature_shape, resuming=resume is not None)
    if knobs.sync_batch_norm:
        model = shard.synced(model)
    trained = shard.wrap(model)  # `model` itself is what checkpoints hold
    if knobs.compile:
        # Compiled once per trial (in its first step); it shares `model`'s parameters.
        # Validation runs `model` itself: a CUDA graph's outputs (reduce-overhead) are
        # overwritten by its next replay, and validation batches differ in size.
        mode = "default" if knobs.compile is True else knobs.compile
        trained = torch.compile(trained, mode=mode)  # type: ignore[assignment]
    optimizer = build_optimizer(parameter_groups(model, knobs), knobs)
    num_params = sum(parameter.numel() for parameter in model.parameters())
    steps_per_epoch = optimizer_steps(len(train_data[1]), knobs, smallest_batch(model, shard))
    schedule, per_batch = build_schedule(optimizer, knobs, steps_per_epoch)
    loss_fn = scoring_loss(knobs)  # val_loss: the same loss in every trial, any loss knob
    train_loss_fn = build_loss(knobs)
    if isinstance(knobs, ClassifierKnobs) and knobs.class_weights == "balanced":
        weights = balanced_class_weights(train_data[1], splits.num_classes).to(device)
        train_loss_fn = build_loss(knobs, weights)
    stopper = EarlyStopping(knobs.patience, knobs.min_delta)
    gpu = epoch_gpu_figures(device)

    first_epoch = 1
    within: dict[str, Any] = {}  # where the first epoch starts, if inside it
    if resume is not None:
        steps_done = resume.epoch * (steps_per_epoch if per_batch else 1)
        resume_training(resume, knobs, model, optimizer, schedule, steps_done)
        stopper = EarlyStopping(**resume.stopper)
        first_epoch = resume.epoch + 1
        within = dict(resume.within_epoch or {})

    def state(epoch: int, position: dict[str, Any] | None = None) -> TrainerState:
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
            within_epoch=position,
            classes=list(splits.classes) or None,
        )

    for epoch in range(first_epoch, knobs.epochs + 1):
        started = time.perf_counter() - within.get("seconds", 0.0)
        # A per-batch schedule has moved on inside the epoch: report the epoch's first lr.
        lr = within.get("lr", float(optimizer.param_groups[0]["lr"]))
        # Batch order and augmentation depend on (seed, epoch): a resumed trial replays.
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        gpu.started()

        def keep_position(
            position: EpochPosition, epoch: int = epoch, lr: float = lr, started: float = started
        ) -> None:
            assert mid_epoch is not None
            seconds = time.perf_counter() - started
            mid_epoch.save(state(epoch - 1, position.as_dict() | {"lr": lr, "seconds": seconds}))

        start = None
        if within:
            start = EpochPosition(**{k: within[k] for k in EpochPosition.__dataclass_fields__})
        train_loss = train_epoch(
            trained, optimizer, train_loss_fn, train_data, knobs, generator, device,
            schedule if per_batch else None,
            start=start,
            wants_position=mid_epoch.pending if mid_epoch is not None else None,
            take_position=keep_position,
            shard=shard,
        )  # fmt: skip
        if not per_batch:
            schedule.step()
        predict_started = time.perf_counter()
        # Each worker predicts its part; all parts make the whole split's outputs.
        outputs = shard.gather(predict(model, shard.part(val_features), device))  # .cpu() syncs
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
            **gpu.figures(),  # on a GPU: its peak memory and utilization (tuner.trainer.gpu)
        }
        if stop:
            metrics["stop_reason"] = stopper.reason()
        if within:
            # This epoch's training that a mid-epoch checkpoint kept: not lost work.
            metrics[RESUMED_WITHIN_EPOCH] = within["seconds"]
            within = {}

        yield Epoch(metrics, epoch, stop, stop or epoch == knobs.epochs, partial(state, epoch))
        if stop:
            return
