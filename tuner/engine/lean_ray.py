"""An embedded Ray started with only what an embedded sweep uses, and told at once that
it is up.

`ray.init(include_dashboard=False)` still starts two Python processes an embedded sweep
never reaches, and it waits for one of them:

- the dashboard head, loading only its usage-stats module: `ray.init` polls until the
  process has imported itself and written its address (0.9 s here, before the raylet
  starts), and `ray.shutdown` waits for it to exit (1.1 s of a 1.35 s shutdown);
- the autoscaler's monitor, which has nothing to scale on one machine.

Ray treats a dashboard that failed to start as a node without a dashboard, so a node
that never starts one is a state Ray already handles. The state API and the Jobs API,
which need the dashboard, are for clusters, and a cluster keeps them: joining one goes
through none of this. A sweep with multi-worker trials keeps the dashboard head
(tuner.engine.session.needs_state_api): Ray Train asks the state API during each of
its runs. It still goes without the monitor and waits for the registration as above.

Then `ray.init` asks the GCS for the raylet's registration through a call that, when the
raylet has not registered yet, sleeps a whole second before asking again (Ray's
GlobalStateAccessor::GetNode). The raylet registers about 0.7 s after it starts, once its
agents have written their ports, so every start paid up to a second of nothing. Asking
the GCS every 20 ms first, with Ray's own call after, cuts that wait to the registration.

Measured whole (`ray.init` of a 2-CPU local Ray, then `ray.shutdown`), 2 cores:
init 2.5-3.5 s before, 1.4-1.5 s after (once 2.4 s: the raylet's own start varies by a
second); shutdown 1.1-1.4 s before, 0.1-0.3 s after. Measured again later on a slower
day of the same kind of machine: init 3.6-3.9 s, 2 s of it the raylet's agents starting
(two Python processes importing aiohttp, gRPC and OpenTelemetry), 1 s Ray's core worker
connecting; shutdown 0.2-0.4 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ray._private import node as ray_node
from ray._private import services

REGISTRATION_POLL_S = 0.02
# Past this, Ray's own call waits (and raises with its own message).
REGISTRATION_PATIENCE_S = 10.0


def _without(process: str) -> Callable[..., None]:
    def skipped(self: Any, *args: Any, **kwargs: Any) -> None:
        del self, args, kwargs  # an embedded sweep has no use for this process
        return None

    skipped.__name__ = f"skip_{process}"
    return skipped


def _registration_awaited(ray_get_node: Callable[[str, str], Any]) -> Callable[[str, str], Any]:
    """Ray's `get_node`, called once the GCS lists the node as alive."""

    def get_node(gcs_address: str, node_id: str) -> Any:
        _await_registration(gcs_address, node_id)
        return ray_get_node(gcs_address, node_id)

    return get_node


def _await_registration(gcs_address: str, node_id: str) -> None:
    # Ray's compiled and generated modules, without type stubs.
    from ray._raylet import GcsClient, NodeID  # type: ignore[attr-defined]
    from ray.core.generated.gcs_pb2 import GcsNodeInfo  # type: ignore[attr-defined]
    from ray.core.generated.gcs_service_pb2 import (  # type: ignore[attr-defined]
        GetAllNodeInfoRequest,
    )

    client = GcsClient(address=gcs_address)
    this_node = [GetAllNodeInfoRequest.NodeSelector(node_id=NodeID.from_hex(node_id).binary())]
    deadline = time.monotonic() + REGISTRATION_PATIENCE_S
    while time.monotonic() < deadline:
        try:
            if client.get_all_node_info(
                timeout=1, node_selectors=this_node, state_filter=GcsNodeInfo.GcsNodeState.ALIVE
            ):
                return
        except Exception:
            return  # the GCS answers Ray's own call with the error worth reporting
        time.sleep(REGISTRATION_POLL_S)


@contextmanager
def lean_embedded_start(embedded: bool, *, dashboard: bool = False) -> Iterator[None]:
    """Around `ray.init`: an embedded Ray starts without the dashboard head (unless
    `dashboard`) and the autoscaler monitor, and is known to be up as soon as its
    raylet registers. Ray's own functions are back in place afterwards; a joined
    cluster goes through none of it."""
    if not embedded:
        yield
        return
    replaced: list[tuple[Any, str, Any]] = [
        (ray_node.Node, "start_monitor", _without("autoscaler monitor")),
        (services, "get_node", _registration_awaited(services.get_node)),
    ]
    if not dashboard:
        replaced.append((ray_node.Node, "start_api_server", _without("dashboard head")))
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in replaced]
    for owner, name, replacement in replaced:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
