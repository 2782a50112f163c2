"""Which price a trial's node has: its Ray labels (instance type, market) looked up in
the dated table, by the node IP each result carries."""

from __future__ import annotations

import logging

import ray

from tuner.tracking.instance_prices import NodePrice, node_price

logger = logging.getLogger(__name__)


class NodePrices:
    """Node IP -> price, read from Ray's node table once per unknown node (a new spot
    worker joins mid-sweep: its first trial's result triggers one more read)."""

    def __init__(self) -> None:
        self._by_ip: dict[str, NodePrice | None] = {}

    def for_ip(self, node_ip: str | None) -> NodePrice | None:
        if not node_ip:
            return None
        if node_ip not in self._by_ip:
            self._read_nodes()
            self._by_ip.setdefault(node_ip, None)  # not in Ray's table: unpriced
        return self._by_ip[node_ip]

    def _read_nodes(self) -> None:
        try:
            nodes = ray.nodes()
        except Exception as exc:  # Ray's GCS unreachable: price nothing rather than fail
            logger.warning("node prices not read: %s", str(exc).splitlines()[0])
            return
        for node in nodes:
            address = node.get("NodeManagerAddress")
            if address:
                self._by_ip[address] = node_price(dict(node.get("Labels") or {}))
