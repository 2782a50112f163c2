"""What a multi-worker trial (`resources_per_trial.workers` > 1) can run, checked before
Ray starts: the trainable's shape and the knobs that need a GPU."""

from __future__ import annotations

import inspect
from typing import Any

from tuner.spec import CategoricalParam, GridParam, SpecError, SweepSpec


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
