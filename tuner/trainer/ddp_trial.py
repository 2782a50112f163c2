"""The built-in trainers as one Ray Train worker of a multi-worker trial.

Each worker runs the one-process epoch loop on its `Shard` (tuner.trainer.distributed).
Rank 0 reports each epoch with its checkpoint when the plan says so; the others report
the same epoch without one (Ray Train waits for a report from every worker). Ray Train
relays rank 0's result to the trial's Tune driver (tuner.engine.multi_worker).
"""

from __future__ import annotations

import tempfile
import time
import uuid
from typing import Any

from tuner.trainer.checkpoint import TrainerState, load_state, save_state
from tuner.trainer.checkpoint_policy import CheckpointPlan, without_plan
from tuner.trainer.data import Task
from tuner.trainer.distributed import Shard
from tuner.trainer.loop import run_epochs


def restored(checkpoint: Any) -> TrainerState | None:
    """The trainer state in a Tune checkpoint (local or remote), or None."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        return load_state(directory)


def train_worker(loop_config: dict[str, Any], task: Task) -> None:
    """One Ray Train worker of a built-in trainer's multi-worker trial.

    `loop_config`: {"config": the trial's config, "checkpoint": Tune's checkpoint to
    resume from, or None} (tuner.engine.multi_worker builds it).
    """
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    device = ray.train.torch.get_device()
    shard = Shard(context.get_world_rank(), context.get_world_size(), str(device))
    config = loop_config["config"]
    plan = CheckpointPlan.from_config(config)
    resume = restored(loop_config.get("checkpoint"))
    last_saved = time.monotonic()
    for epoch in run_epochs(without_plan(config), task, resume, shard=shard):
        seconds = time.monotonic() - last_saved
        # Only rank 0 writes: its clock alone decides, the others need not agree.
        if shard.rank == 0 and plan.due(epoch.number, seconds, last=epoch.last):
            state = epoch.state()
            state.checkpoint_id = uuid.uuid4().hex
            with tempfile.TemporaryDirectory(prefix="tuner-ckpt-") as directory:
                save_state(state, directory)
                ray.train.report(
                    epoch.metrics, checkpoint=ray.train.Checkpoint.from_directory(directory)
                )
            last_saved = time.monotonic()
        else:
            ray.train.report(epoch.metrics)
        if plan.ends_after(epoch.number):  # ASHA's max_t, the same epoch on every rank
            break
