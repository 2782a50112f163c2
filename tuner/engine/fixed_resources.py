"""On this machine's own Ray, trials take their CPUs and GPUs without placement groups.

Ray Tune reserves every trial's resources with a placement group of its own: one is
created in Ray's control service when the trial is queued, waited on, and removed when
the trial ends, actor reuse or not. Each is a round trip to the control service: at
1,500 null trials on 2 cores that was 3,000 of them and 20-30 ms of the driver's loop
per trial, more than any other part of tuner's or Ray Tune's per-trial cost.

A placement group is what lets a cluster's autoscaler see a trial's whole request, and
keeps a trial's workers together across nodes. An embedded Ray has neither need: one
node whose resources never change. There Ray Tune's `FixedResourceManager` (Ray's own,
for Tune runs nested in a fixed budget) counts the machine's resources in the driver
instead: the same trials fit at once, and no request leaves the process.

Only single-process trials on a Ray this process started: a multi-worker trial's Ray
Train workers make placement groups of their own, and a Ray that was joined (a cluster,
perhaps autoscaling from a head with no CPUs) keeps Ray's placement groups for every
trial, whether `--address` named it or the caller's own `ray.init` did.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import ray
from ray.air.execution import FixedResourceManager
from ray.tune.execution import tune_controller

logger = logging.getLogger(__name__)

_DEFAULT = "PlacementGroupResourceManager"  # the name Ray Tune's controller builds


def ray_started_here() -> bool:
    """Whether this process started the Ray it is connected to (an embedded Ray: one
    node, whose resources never change) rather than joining a running one."""
    node = getattr(ray._private.worker, "_global_node", None)  # Ray keeps it private
    return ray.is_initialized() and bool(getattr(node, "head", False))


@contextlib.contextmanager
def placement_groups_off(active: bool = True) -> Iterator[None]:
    """Within it (when `active`), a Ray Tune controller created counts resources in
    the driver rather than with placement groups."""
    original = getattr(tune_controller, _DEFAULT, None)
    if not active or original is None or original is FixedResourceManager:
        if active and original is None:
            logger.debug("Ray Tune's controller changed: trials keep placement groups")
        yield
        return
    setattr(tune_controller, _DEFAULT, FixedResourceManager)
    try:
        yield
    finally:
        setattr(tune_controller, _DEFAULT, original)
