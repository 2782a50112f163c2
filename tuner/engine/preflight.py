"""Every check of a sweep that can fail in seconds, before Ray starts or MLflow gets a run."""

from __future__ import annotations

from typing import Any

import ray

from tuner.engine.session import check_local_resources
from tuner.engine.trainables import resolve_trainable
from tuner.spec import SweepSpec
from tuner.spec.secrets import check_environment
from tuner.tracking.access import check_tracking_reachable
from tuner.trainer.registry import BUILTINS


def preflight(
    spec: SweepSpec,
    withheld: dict[str, Any],
    *,
    address: str | None,
    num_cpus: int | None,
    tracking_uri: str,
) -> None:
    """`withheld`: the sweep's secrets; `address`: the cluster joined, None for embedded."""
    if address is None:  # embedded trials read ${env:NAME} from this process
        check_environment({**spec.config, **withheld})
    if spec.trainable not in BUILTINS:
        # User code's import errors surface before anything starts (`tuner run` imported
        # it already to check it); a built-in is imported while Ray starts.
        resolve_trainable(spec.trainable)
    if address is None and not ray.is_initialized():
        check_local_resources(spec, num_cpus)
    check_tracking_reachable(tracking_uri)
