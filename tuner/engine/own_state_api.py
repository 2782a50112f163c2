"""An embedded Ray's processes ask its own State API, not a guess among the machine's Rays.

Ray's State API (`ray.util.state.get_actor`, which Ray Train's PlacementGroupCleaner
asks whether a run's controller lives) takes no address from the Ray its process
belongs to: it reads RAY_API_SERVER_ADDRESS or RAY_ADDRESS, else /tmp/ray's
ray_current_cluster (written by `ray start`), else the GCS processes it finds on the
machine. With a second Ray on the machine (another `tuner run`, a `ray start`) that
guess fails ("Found multiple active Ray instances": the cleaner prints a traceback and
stops watching, so a controller that dies unannounced leaves its workers' placement
group held) or picks the other Ray. An embedded Ray that serves the State API starts
its dashboard on a port chosen here, and its processes inherit the URL in
RAY_API_SERVER_ADDRESS. A joined cluster's processes have the environment its nodes
started with (`ray start` records the address there); nothing changes for it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ray._private import ray_constants

API_SERVER_ENV = ray_constants.RAY_API_SERVER_ADDRESS_ENVIRONMENT_VARIABLE
LOOPBACK = "127.0.0.1"


@contextmanager
def own_state_api(embedded: bool, *, dashboard: bool) -> Iterator[dict[str, Any]]:
    """Around an embedded `ray.init` that starts the dashboard: where the dashboard
    listens, as `ray.init`'s arguments, with RAY_API_SERVER_ADDRESS naming it in the
    environment Ray's processes inherit; this process's own environment is as it was
    afterwards. No arguments, and nothing set, otherwise."""
    if not (embedded and dashboard):
        yield {}
        return
    port = _free_loopback_port()
    previous = os.environ.get(API_SERVER_ENV)
    os.environ[API_SERVER_ENV] = f"http://{LOOPBACK}:{port}"
    try:
        yield {"dashboard_host": LOOPBACK, "dashboard_port": port}
    finally:
        if previous is None:
            os.environ.pop(API_SERVER_ENV, None)
        else:
            os.environ[API_SERVER_ENV] = previous


def _free_loopback_port() -> int:
    """A port the kernel found free on loopback (Ray binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])
