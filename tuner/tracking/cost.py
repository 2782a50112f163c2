"""What a sweep's trials cost: the resources each held, times how long, and dollars.

A trial holds its placement (its CPUs and GPUs) from the moment Ray starts it until it
ends: that is what a cloud bills for, whether the trial trains or waits on a result.
A trial that restarts after losing its worker holds again from its restart, and a
resumed sweep adds this driver's time to what its runs recorded before. Dollars are
hours times the sweep file's `cost` prices, only where a price is given.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tuner.spec.schema import CostPrices

CPU_HOURS = "cpu_hours"
GPU_HOURS = "gpu_hours"
COST_USD = "cost_usd"


@dataclass(frozen=True)
class Held:
    """Resource-hours held: CPUs x hours and GPUs x hours."""

    cpu_hours: float = 0.0
    gpu_hours: float = 0.0

    def __add__(self, other: Held) -> Held:
        return Held(self.cpu_hours + other.cpu_hours, self.gpu_hours + other.gpu_hours)

    def usd(self, prices: CostPrices | None) -> float | None:
        """Their price, None when the sweep gives no price for a resource it held."""
        if prices is None:
            return None
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
        self._running: dict[str, tuple[float, float, float]] = {}  # started, cpus, gpus

    def carry_over(self, trial_id: str, held: Held) -> None:
        """A resumed trial's hours from before, as its run recorded them."""
        self._held[trial_id] = held

    def start(self, trial_id: str, cpus: float, gpus: float, now: float | None = None) -> None:
        if trial_id not in self._running:
            self._running[trial_id] = (time.monotonic() if now is None else now, cpus, gpus)

    def stop(self, trial_id: str, now: float | None = None) -> Held:
        """The trial let go of its resources; its hours so far."""
        running = self._running.pop(trial_id, None)
        if running is not None:
            self._held[trial_id] = self.held(trial_id) + _segment(running, now)
        return self.held(trial_id)

    def held(self, trial_id: str) -> Held:
        return self._held.get(trial_id, Held())

    def total(self, now: float | None = None) -> Held:
        """Every trial's hours, the running ones' up to `now`."""
        total = Held()
        for held in self._held.values():
            total += held
        for running in self._running.values():
            total += _segment(running, now)
        return total


def _segment(running: tuple[float, float, float], now: float | None) -> Held:
    started, cpus, gpus = running
    hours = max(0.0, (time.monotonic() if now is None else now) - started) / 3600
    return Held(cpus * hours, gpus * hours)
