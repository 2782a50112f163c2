"""What a cloud instance costs an hour: the dated table tuner prices a cluster's trials
with when the sweep file gives no `cost:`. The infra's workers label their Ray node with
their instance type and market (infra/scripts/bootstrap-worker.sh); infra/README.md
says how to refresh this table.

On-demand prices are AWS's public list prices (Linux, us-east-1). Spot prices move by
the hour and by zone: the spot figures here are estimates (about 40% of on-demand, a
common discount for these families), good for budgets, not for invoices; refresh them
from the spot price history (infra/README.md) before relying on a `max_usd`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AS_OF = "2026-12-01"
REGION = "us-east-1"
# The Ray node labels the infra's bootstrap scripts set (`ray start --labels`).
LABEL_INSTANCE_TYPE = "tuner.io/instance-type"
LABEL_MARKET = "tuner.io/market"  # "spot" or "on-demand", from IMDS instance-life-cycle

Market = Literal["spot", "on-demand"]


@dataclass(frozen=True)
class InstancePrice:
    on_demand_usd_per_hour: float
    spot_usd_per_hour: float
    vcpus: int
    gpus: int

    def usd_per_hour(self, market: Market) -> float:
        return self.spot_usd_per_hour if market == "spot" else self.on_demand_usd_per_hour


PRICES: dict[str, InstancePrice] = {
    # GPU workers (infra's worker_instance_types): one GPU each.
    "g4dn.xlarge": InstancePrice(0.526, 0.22, vcpus=4, gpus=1),
    "g4dn.2xlarge": InstancePrice(0.752, 0.30, vcpus=8, gpus=1),
    "g5.xlarge": InstancePrice(1.006, 0.42, vcpus=4, gpus=1),
    "g5.2xlarge": InstancePrice(1.212, 0.50, vcpus=8, gpus=1),
    "g6.xlarge": InstancePrice(0.8048, 0.36, vcpus=4, gpus=1),
    "g6.2xlarge": InstancePrice(0.9776, 0.43, vcpus=8, gpus=1),
    "g5.12xlarge": InstancePrice(5.672, 2.30, vcpus=48, gpus=4),
    "p4d.24xlarge": InstancePrice(32.7726, 12.50, vcpus=96, gpus=8),
    # CPU nodes (the head, CPU workers).
    "m6i.xlarge": InstancePrice(0.192, 0.08, vcpus=4, gpus=0),
    "m6i.2xlarge": InstancePrice(0.384, 0.16, vcpus=8, gpus=0),
    "c6i.2xlarge": InstancePrice(0.34, 0.14, vcpus=8, gpus=0),
}


@dataclass(frozen=True)
class NodePrice:
    """A node's hourly price and what it holds: a trial pays its share of the node."""

    instance_type: str
    market: Market
    usd_per_hour: float
    vcpus: int
    gpus: int

    def share(self, cpus: float, gpus: float) -> float:
        """The fraction of the node a trial holding `cpus` and `gpus` keeps from others:
        its larger share of either (a GPU trial on a GPU node pays for its GPU)."""
        shares = [cpus / self.vcpus] if self.vcpus else []
        shares += [gpus / self.gpus] if self.gpus else []
        return min(1.0, max(shares, default=0.0))


def node_price(labels: dict[str, str]) -> NodePrice | None:
    """The price of a node from its Ray labels; None where the table does not know it."""
    instance_type = labels.get(LABEL_INSTANCE_TYPE)
    market = labels.get(LABEL_MARKET, "on-demand")
    price = PRICES.get(instance_type or "")
    if price is None or market not in ("spot", "on-demand"):
        return None
    typed: Market = "spot" if market == "spot" else "on-demand"
    return NodePrice(instance_type or "", typed, price.usd_per_hour(typed), price.vcpus, price.gpus)
