"""What a multi-worker trial (`resources_per_trial.workers` > 1) can run, checked before
Ray starts: the trainable's shape, the knobs that need a GPU, and a batch that batch
norm can train on once cut between the workers."""

from __future__ import annotations

import inspect
from typing import Any

from tuner.spec import CategoricalParam, GridParam, IntParam, SpecError, SweepSpec


def check_per_worker_function(spec: SweepSpec, fn: Any) -> None:
    """With several workers a user's trainable is a plain function that Ray Train runs on
    every worker: a class has no per-worker form, and Train does not drive a generator."""
    if not spec.resources_per_trial.distributed:
        return
    if isinstance(fn, type):
        kind = "a tune.Trainable class"
    elif inspect.isgeneratorfunction(fn):
        kind = "a generator function"
    else:
        return
    raise SpecError(
        None,
        "resources_per_trial.workers",
        f"{spec.resources_per_trial.workers} workers run a function of the config on every "
        f"worker; {spec.trainable!r} is {kind} (see docs/own-trainable.md#several-workers)",
    )


def check_sync_batch_norm(spec: SweepSpec, fixed: bool) -> None:
    """`sync_batch_norm` on CPU workers: torch's SyncBatchNorm runs on GPUs only (DDP
    refuses it on a CPU module), so each trial would fail at its first step. With one
    worker it changes nothing, so it is accepted there, as on GPU workers."""
    resources = spec.resources_per_trial
    if not resources.distributed or resources.gpu:
        return
    searched = spec.params.get("sync_batch_norm")
    if isinstance(searched, CategoricalParam | GridParam):
        key = "params.sync_batch_norm" if True in searched.options else None
    else:
        key = "config.sync_batch_norm" if fixed else None
    if key is not None:
        raise SpecError(
            None,
            key,
            f"torch's SyncBatchNorm runs on GPUs only; these {resources.workers} workers "
            "have gpu: 0 (without it each worker normalizes its own part of the batch)",
        )


def _may_be(spec: SweepSpec, knob: str, fixed: Any, value: bool) -> bool:
    """Whether a trial of the sweep can have `knob` at `value`: one of its searched
    options, or its fixed value when it is not searched."""
    searched = spec.params.get(knob)
    if isinstance(searched, CategoricalParam | GridParam):
        return value in searched.options
    return bool(fixed) == value


def _smallest_batch_size(spec: SweepSpec, fixed: int) -> tuple[str, int]:
    """(the key that gives it, the smallest batch_size a trial of the sweep can have)."""
    searched = spec.params.get("batch_size")
    if isinstance(searched, IntParam):
        return "params.batch_size.low", int(searched.low)
    if isinstance(searched, CategoricalParam | GridParam):
        index, smallest = min(enumerate(searched.options), key=lambda pair: float(pair[1]))
        return f"params.batch_size.{searched.options_key}[{index}]", int(smallest)
    return "config.batch_size", fixed


def check_batch_norm_split(spec: SweepSpec, knobs: Any) -> None:
    """Batch norm on each worker's part of a batch: `batch_size` is the global batch, cut
    into one part a worker, and a part of one sample fails the trial at its first step
    (torch: "Expected more than 1 value per channel when training"). SyncBatchNorm (GPU
    workers) normalizes over the whole batch, so one sample a worker is fine there."""
    workers = spec.resources_per_trial.workers
    if workers < 2 or not _may_be(spec, "batch_norm", knobs.batch_norm, True):
        return
    if spec.resources_per_trial.gpu and not _may_be(
        spec, "sync_batch_norm", knobs.sync_batch_norm, False
    ):
        return
    key, batch_size = _smallest_batch_size(spec, knobs.batch_size)
    if batch_size >= 2 * workers:
        return
    raise SpecError(
        None,
        key,
        f"batch_size {batch_size} over {workers} workers leaves a worker "
        f"{batch_size // workers} sample{'s' if batch_size // workers != 1 else ''} a step, "
        f"and batch_norm needs 2 on each: use batch_size {2 * workers} or more"
        + (", or sync_batch_norm: true" if spec.resources_per_trial.gpu else ""),
    )
