"""A sweep's budget as Ray Tune sees it: a stopper that ends the sweep once it is spent.

Ray checks a stopper's `stop_all()` on every step of its loop, results or not, so a wall
budget ends the sweep on time. It ends it the way Ctrl-C does (Ray saves its state with
the running trials' last checkpoints and the unstarted ones pending), so that
`tuner resume --budget` goes on from there; the sweep itself ends FINISHED.
Ray pickles its stopper with the experiment: like FailFast, this one pickles as its
key, so the copy Ray holds and the ledger the trial tracker keeps are the same.
Grid and random sweeps stop creating trials at max_trials in their generator
(`tuner.search.capped`); Optuna's get num_samples capped (`tuner_factory`).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from ray.tune.stopper import Stopper

from tuner.search.shared_by_key import SharedByKey
from tuner.spec.budget import Budget
from tuner.spec.schema import CostPrices, SweepSpec
from tuner.tracking.cost import CostLedger
from tuner.tracking.tags import TAG_BUDGET_REACHED, TAG_STOP_WHEN, TAG_STOPPED_BY


class BudgetStop(SharedByKey, Stopper):  # type: ignore[misc]
    def __init__(self, key: str = "") -> None:
        super().__init__(key)
        self.budget: Budget | None = None
        self.prices: CostPrices | None = None
        self.ledger: CostLedger | None = None
        self.started = time.monotonic()
        self.reached: str | None = None  # which limit, in words, once one is
        self._interrupted = False

    def watch(
        self, budget: Budget | None, prices: CostPrices | None, ledger: CostLedger
    ) -> BudgetStop:
        """Count from now, against `budget`, what `ledger` says the trials held."""
        self.budget, self.prices, self.ledger = budget, prices, ledger
        self.started = time.monotonic()
        self.reached = None
        self._interrupted = False
        return self

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        if self.reached is not None or self.budget is None:
            return self.reached is not None and not self._interrupted
        self.reached = self._first_reached(self.budget)
        if self.reached is None:
            return False
        if threading.current_thread() is threading.main_thread():
            # Ended as Ctrl-C ends a sweep, not as Ray's stop_all: running trials keep
            # their checkpoints and unstarted ones stay pending in the saved state, so
            # `tuner resume --budget` goes on with them (stop_all would end them all).
            self._interrupted = True
            os.kill(os.getpid(), signal.SIGINT)
            return False
        return True

    def _first_reached(self, budget: Budget) -> str | None:
        wall = time.monotonic() - self.started
        if budget.max_wall_s is not None and wall >= budget.max_wall_s:
            return f"max_wall {budget.max_wall}"
        if self.ledger is None:
            return None
        held = self.ledger.total()
        usd = held.usd(self.prices)
        if budget.max_usd is not None and usd is not None and usd >= budget.max_usd:
            return f"max_usd ${budget.max_usd:g} (${usd:.4g} spent)"
        if budget.max_gpu_hours is not None and held.gpu_hours >= budget.max_gpu_hours:
            return f"max_gpu_hours {budget.max_gpu_hours:g}"
        if budget.max_cpu_hours is not None and held.cpu_hours >= budget.max_cpu_hours:
            return f"max_cpu_hours {budget.max_cpu_hours:g}"
        return None


def trials_capped(spec: SweepSpec) -> str | None:
    """The budget's max_trials in words, when it held back trials the sweep asked for."""
    max_trials = spec.max_trials
    if max_trials is None or spec.expected_trials() <= max_trials:
        return None
    return f"max_trials {max_trials}"


def end_reason(budget_reached: str | None, terminated: str | None) -> str:
    """Why the runs still open when a sweep ended were cut off (their `tuner.killed`)."""
    if budget_reached is not None:
        return "budget"
    return "stop_when" if terminated is not None else "the sweep ended"


def stop_tags(budget_reached: str | None, terminated: str | None) -> dict[str, str]:
    """The sweep run's tags saying what ended it before all its trials ran, if anything."""
    if budget_reached is not None:
        return {TAG_STOPPED_BY: "budget", TAG_BUDGET_REACHED: budget_reached}
    if terminated is not None:
        return {TAG_STOPPED_BY: "stop_when", TAG_STOP_WHEN: terminated}
    return {}
