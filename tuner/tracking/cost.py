"""What a sweep's trials cost: the resources each held, times how long, and dollars.

A trial holds its placement (its CPUs and GPUs) from the moment Ray starts it until it
ends: that is what a cloud bills for, whether the trial trains or waits on a result.
A trial that restarts after losing its worker holds again from its restart, and a
resumed sweep adds this driver's time to what its runs recorded before. Dollars are
hours times the sweep file's `cost` prices where it gives them; otherwise, on a cluster
whose nodes carry their instance type (the infra's do), each trial pays its share of
its node's hourly price from the dated table (`instance_prices.py`). Without either,
no dollars are claimed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tuner.spec.schema import CostPrices
from tuner.tracking.instance_prices import NodePrice

CPU_HOURS = "cpu_hours"
GPU_HOURS = "gpu_hours"
COST_USD = "cost_usd"


@dataclass(frozen=True)
class Held:
    """Resource-hours held: CPUs x hours and GPUs x hours."""

    cpu_hours: float = 0.0
    gpu_hours: float = 0.0
    # Dollars at the nodes' own prices, and whether they cover every hour held (False
    # when some ran on a node without a known price, or the nodes were never asked).
    node_usd: float = 0.0
    node_priced: bool = False

    @property
    def holds(self) -> bool:
        return bool(self.cpu_hours or self.gpu_hours)

    def __add__(self, other: Held) -> Held:
        parts = [held for held in (self, other) if held.holds]
        return Held(
            self.cpu_hours + other.cpu_hours,
            self.gpu_hours + other.gpu_hours,
            self.node_usd + other.node_usd,
            bool(parts) and all(held.node_priced for held in parts),
        )

    def usd(self, prices: CostPrices | None) -> float | None:
        """Their price: at the sweep file's prices if it gives them (None when it gives
        none for a resource held), else at the nodes' prices (None if a node had none)."""
        if prices is None:
            return self.node_usd if self.holds and self.node_priced else None
        total = 0.0
        for hours, price in (
            (self.cpu_hours, prices.usd_per_cpu_hour),
            (self.gpu_hours, prices.usd_per_gpu_hour),
        ):
            if hours and price is None:
                return None
            total += hours * (price or 0.0)
        return total

    def metrics(self, prices: CostPrices | None) -> dict[str, float]:
        """As MLflow metrics: cpu_hours, gpu_hours, and cost_usd where priced."""
        found = {CPU_HOURS: self.cpu_hours, GPU_HOURS: self.gpu_hours}
        usd = self.usd(prices)
        if usd is not None:
            found[COST_USD] = usd
        return found


class CostLedger:
    """Every trial's held resources, the running ones counted up to now."""

    def __init__(self) -> None:
        self._held: dict[str, Held] = {}
        # Trials that ended, summed: a long sweep keeps no entry per ended trial, and
        # total() (which a budget reads every step) does not grow with the sweep.
        self._ended = Held()
        # started, cpus, gpus, and the node's price once a result says where it runs
        self._running: dict[str, Segment] = {}

    def carry_over(self, trial_id: str, held: Held) -> None:
        """A resumed trial's hours from before, as its run recorded them."""
        self._held[trial_id] = held

    def start(self, trial_id: str, cpus: float, gpus: float, now: float | None = None) -> None:
        if trial_id not in self._running:
            started = time.monotonic() if now is None else now
            self._running[trial_id] = Segment(started, cpus, gpus)

    def locate(self, trial_id: str, price: NodePrice | None) -> None:
        """The node the running trial holds its resources on, and that node's price."""
        segment = self._running.get(trial_id)
        if segment is not None and not segment.located:
            segment.price, segment.located = price, True

    def is_located(self, trial_id: str) -> bool:
        segment = self._running.get(trial_id)
        return segment is None or segment.located

    def stop(self, trial_id: str, now: float | None = None) -> Held:
        """The trial let go of its resources; its hours so far."""
        running = self._running.pop(trial_id, None)
        if running is not None:
            self._held[trial_id] = self.held(trial_id) + _segment(running, now)
        return self.held(trial_id)

    def end(self, trial_id: str, now: float | None = None) -> Held:
        """The trial ended for good: its hours, now counted in the total only."""
        held = self.stop(trial_id, now)
        self._held.pop(trial_id, None)
        self._ended += held
        return held

    def held(self, trial_id: str) -> Held:
        return self._held.get(trial_id, Held())

    def total(self, now: float | None = None) -> Held:
        """Every trial's hours, the running ones' up to `now`."""
        total = self._ended
        for held in self._held.values():
            total += held
        for running in self._running.values():
            total += _segment(running, now)
        return total


@dataclass
class Segment:
    """A trial holding its resources since `started` (one stretch, between restarts)."""

    started: float
    cpus: float
    gpus: float
    price: NodePrice | None = None  # None: on a node without a known price
    located: bool = False


def _segment(running: Segment, now: float | None) -> Held:
    hours = max(0.0, (time.monotonic() if now is None else now) - running.started) / 3600
    price = running.price
    usd = price.usd_per_hour * hours * price.share(running.cpus, running.gpus) if price else 0.0
    return Held(running.cpus * hours, running.gpus * hours, usd, node_priced=price is not None)
