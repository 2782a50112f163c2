"""An embedded Ray serves one user's sweep on their machine: none of its processes (GCS,
raylet, agents, metrics endpoint, workers, the driver's own servers) listens beyond
loopback, as the machine's sockets say."""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import psutil
import pytest
import ray

from tuner.engine.own_state_api import API_SERVER_ENV
from tuner.engine.session import start_or_join

pytestmark = pytest.mark.ray


def listening_addresses(pids: set[int]) -> set[tuple[str, str]]:
    found = set()
    for connection in psutil.net_connections("inet"):
        if connection.status == psutil.CONN_LISTEN and connection.pid in pids:
            name = psutil.Process(connection.pid).name()
            found.add((connection.laddr.ip, name))
    return found


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


@pytest.mark.parametrize("state_api", [False, True], ids=["lean", "with-state-api"])
def test_an_embedded_ray_listens_on_loopback_only(state_api: bool) -> None:
    assert not ray.is_initialized()
    assert start_or_join(None, num_cpus=1, state_api=state_api)
    try:

        @ray.remote
        def worker_pid() -> int:
            return os.getpid()

        ray.get(worker_pid.remote())  # a worker process is up too
        me = psutil.Process()
        pids = {me.pid} | {child.pid for child in me.children(recursive=True)}
        addresses = listening_addresses(pids)
        names = {name for _, name in addresses}
        assert "gcs_server" in names and "raylet" in names, addresses
        assert [entry for entry in addresses if not is_loopback(entry[0])] == []
        if state_api:
            # What Ray Train's placement-group cleaner asks of a multi-worker trial's
            # run: the State API answers, from the dashboard, on loopback too.
            from ray.util.state import list_actors

            assert isinstance(list_actors(limit=5, timeout=10), list)

            # Its processes ask this Ray's State API even with another Ray on the
            # machine (tests/test_per_worker.py): they inherit its URL; this process
            # keeps its own environment.
            @ray.remote
            def api_server() -> str | None:
                return os.environ.get(API_SERVER_ENV)

            node: Any = ray._private.worker._global_node  # typed None in Ray
            dashboard = node.webui_url
            assert ray.get(api_server.remote()) == f"http://{dashboard}"
            assert API_SERVER_ENV not in os.environ
    finally:
        ray.shutdown()
