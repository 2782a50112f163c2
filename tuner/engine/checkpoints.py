"""The checkpoint plan each built-in trial gets: the sweep's policy plus the forced epochs.

A built-in trainer checkpoints when its plan says so (tuner.trainer.checkpoint_policy);
the epochs where it must, whatever the policy, are where the scheduler judges it: ASHA's
rungs and max_t. A trial ASHA stops then keeps a checkpoint of where it stopped.
"""

from __future__ import annotations

from typing import Any

from tuner.search.promotion import rung_epochs
from tuner.search.space import param_space
from tuner.spec import AshaScheduler, SweepSpec
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
    )


def trial_space(spec: SweepSpec) -> dict[str, Any]:
    """The Tuner's param_space; a built-in's trials also get their checkpoint plan.

    User trainables get exactly their params and config: nothing of tuner's own.
    """
    space = param_space(spec)
    if spec.trainable in BUILTINS:
        space[PLAN_KEY] = checkpoint_plan(spec).as_config()
    return space
