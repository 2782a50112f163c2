"""Checkpoints of a sweep: the plan each built-in trial gets, and thinning them at the end.

A built-in trainer checkpoints when its plan says so (tuner.trainer.checkpoint_policy);
the epochs where it must, whatever the policy, are where the scheduler judges it: ASHA's
rungs and max_t, and PBT's perturbation points (trials are cloned from the checkpoints
written there). A trial ASHA stops then keeps a checkpoint of where it stopped.

While a sweep runs every checkpoint stays (see build_tuner: Ray's own deletion can
outrun its experiment snapshot); once it has ended, each trial keeps its latest only,
the one it would resume from and the best trial's model is exported from.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow.fs
from ray import tune

from tuner.engine.storage import Storage
from tuner.search.promotion import rung_epochs
from tuner.search.space import param_space
from tuner.spec import AshaScheduler, PbtScheduler, SweepSpec
from tuner.trainer.checkpoint_policy import PLAN_KEY, CheckpointPlan
from tuner.trainer.registry import BUILTINS


def checkpoint_plan(spec: SweepSpec) -> CheckpointPlan:
    forced: set[int] = set()
    scheduler = spec.scheduler
    if isinstance(scheduler, AshaScheduler):
        forced.update(
            rung_epochs(scheduler.grace_period, scheduler.max_t, scheduler.reduction_factor)
        )
        forced.add(scheduler.max_t)
    return CheckpointPlan(
        every_epochs=spec.checkpoint.every_epochs,
        min_interval_s=spec.checkpoint.min_interval_s,
        forced_epochs=frozenset(forced),
        forced_every=scheduler.perturbation_interval if isinstance(scheduler, PbtScheduler) else 0,
        ends_at=scheduler.max_t if isinstance(scheduler, AshaScheduler) else 0,
    )


def trial_space(spec: SweepSpec) -> dict[str, Any]:
    """The Tuner's param_space; a built-in's trials also get their checkpoint plan.

    User trainables get exactly their params and config: nothing of tuner's own.
    """
    space = param_space(spec)
    if spec.trainable in BUILTINS:
        space[PLAN_KEY] = checkpoint_plan(spec).as_config()
    return space


logger = logging.getLogger(__name__)


def prune_checkpoints(
    results: tune.ResultGrid, storage: Storage, released: Sequence[tuple[str, str]] = ()
) -> int:
    """Delete every checkpoint of the sweep's trials but each one's latest; return how many.
    `released`: (trial path, latest checkpoint path) of trials no longer in `results`.

    Thinning is a convenience, never a reason to fail a finished sweep: a checkpoint
    that cannot be deleted stays, with a warning. Trials are listed a few at a time: on
    S3 each is a request, and a sweep of 10,000 trials one after another waited minutes.
    """
    filesystem = storage.filesystem or pyarrow.fs.LocalFileSystem()
    kept = [
        (result.path, result.checkpoint.path)
        for result in (results[index] for index in range(len(results)))
        if result.checkpoint is not None and result.path is not None
    ] + list(released)
    with ThreadPoolExecutor(PRUNING_REQUESTS_IN_FLIGHT) as pool:
        return sum(pool.map(lambda pair: _prune_trial(filesystem, *pair), kept))


# Storage requests in flight while pruning (listings and deletions).
PRUNING_REQUESTS_IN_FLIGHT = 16


def _prune_trial(filesystem: pyarrow.fs.FileSystem, trial_path: str, latest: str) -> int:
    """Delete one trial's checkpoints but `latest`; return how many went."""
    try:
        entries = filesystem.get_file_info(pyarrow.fs.FileSelector(trial_path))
    except OSError:
        logger.warning("could not list checkpoints in %s", trial_path, exc_info=True)
        return 0
    deleted = 0
    for entry in entries:
        if entry.type != pyarrow.fs.FileType.Directory or entry.path == latest:
            continue
        if not entry.base_name.startswith("checkpoint_"):
            continue
        try:
            filesystem.delete_dir(entry.path)
            deleted += 1
        except OSError:
            logger.warning("could not delete checkpoint %s", entry.path, exc_info=True)
    return deleted
