"""A multi-worker trial whose worker's node died, though its survivor spoke first.

When a node under one of a trial's Ray Train workers dies, two accounts race to Train's
controller. Ray's own (the dead worker's failed health check, a `RayActorError`) comes
only once the cluster has declared the node dead: about 17 s after a crash, as Ray's
health checks go. The survivors' comes at once: their next collective (an all-reduce,
`all_gather_object`) fails with "Connection closed by peer" from gloo, or NCCL's error.
When the survivors' account wins, the trial's error reads as its own code's, the
restart is tagged "error" instead of "node lost", and a preempted node's restart counts
against `max_failures`.

So when a Train run fails with a lost peer's symptoms and no worker's death, the trial
waits (bounded) for the cluster to say whether a node its workers ran on died, and if
one did, fails with that death: Ray Tune, `restart_reason` and the user then see what
happened. A user's own error (no peer-loss symptom) fails at once, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from ray.exceptions import RayActorError

from tuner.tracking.results import errors_within

# Ray declares a crashed node dead after 5 missed health checks 3 s apart, each given
# 10 s (its defaults): within about 25 s; 17 s measured on the loopback cluster. The
# wait leaves a loaded machine room, and is spent only when no node died.
NODE_DEATH_WAIT_S = 45.0
_POLL_S = 0.5

# What a survivor's collective raises when its peer's process is gone. gloo raises a
# RuntimeError that says so; NCCL a DistBackendError; a store, DistNetworkError.
_PEER_GONE_TEXT = ("connection closed by peer", "connection reset by peer", "broken pipe")
_PEER_GONE_TYPES = frozenset(
    {"DistBackendError", "DistNetworkError", "DistStoreError", "WorkerHealthCheckTimeoutError"}
)
# NodeDeathInfo.Reason: the autoscaler drained the node because its instance was preempted.
_DRAIN_PREEMPTED = 3


def lost_peer_symptom(error: BaseException) -> bool:
    """Whether `error` (Train's, with each failed worker's inside) shows a worker that
    lost its peer: a collective cut off, or a worker that stopped answering."""
    return any(_peer_gone(inner) for inner in errors_within(error))


def _peer_gone(error: BaseException) -> bool:
    if type(error).__name__ in _PEER_GONE_TYPES:
        return True
    if not isinstance(error, RuntimeError):
        return False
    message = str(error).lower()
    return any(text in message for text in _PEER_GONE_TEXT)


def dead_node(node_table: Iterable[dict[str, Any]], node_ids: set[str]) -> dict[str, Any] | None:
    """The entry of `ray.nodes()` for one of `node_ids` that the cluster declared dead."""
    for node in node_table:
        if node.get("NodeID") in node_ids and not node.get("Alive", True):
            return node
    return None


def node_death(node: dict[str, Any]) -> RayActorError:
    """A worker's death as Ray would have told it: preempted when the node was drained
    for its instance's preemption (Ray Tune then leaves it out of `max_failures`)."""
    reason = node.get("DeathReasonMessage") or "no reason given"
    return RayActorError(
        error_msg=f"a worker's node {node.get('NodeID', '?')} died ({reason})",
        preempted=node.get("DeathReason") == _DRAIN_PREEMPTED,
    )


def wait_for_node_death(
    node_ids: set[str],
    nodes: Callable[[], list[dict[str, Any]]],
    timeout_s: float = NODE_DEATH_WAIT_S,
) -> RayActorError | None:
    """The death of one of `node_ids` once the cluster declares it, within `timeout_s`;
    None when they all still live (the peer's loss was its own process's)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = dead_node(nodes(), node_ids)
        if found is not None:
            return node_death(found)
        if time.monotonic() >= deadline:
            return None
        time.sleep(_POLL_S)
