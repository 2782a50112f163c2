"""The next trial to run, chosen in the order trials were added, without a scan of all.

Ray's FIFO rule (`FIFOScheduler.choose_trial_to_run`, which ASHA inherits) walks every
trial of the sweep from the first, at every step of Ray Tune's loop, to find the first
PENDING one, then the first PAUSED one. In a long sweep nearly all trials have finished,
so each step costs time in the number of trials so far, and the sweep in their square:
at 1,500 null trials it was 3 s of the driver's loop, at 4,000 trials 29% of it.

`InOrder` keeps the trials that have not finished, in the order they were added, and
forgets each as it is found finished: a choice then reads only the open trials. It
chooses as Ray's rule does. A finished trial is not expected to run again in the same
sweep; if one did, Ray Tune would still start it from its own pending list, only not
as the scheduler's first choice.

A choice is also the moment, between Ray's events, when ended trials can leave the
driver: `release_ended`, when the engine sets it, is called with the controller then
(tuner.engine.ended_trials).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler

FINISHED = (Trial.TERMINATED, Trial.ERROR)


class InOrder:
    """Mixed in before a scheduler that keeps Ray's FIFO choice (FIFO, ASHA)."""

    # A class default: a scheduler pickled before it existed unpickles without one.
    release_ended: Callable[[Any], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Insertion-ordered: the dict's keys are the open trials, first added first.
        self._open_trials: dict[Trial, None] = {}

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        super().on_trial_add(tune_controller, trial)  # type: ignore[misc]
        if trial.status not in FINISHED:
            self._open_trials[trial] = None

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        pending = paused = None
        # The whole walk, not up to the first PENDING trial: the finished trials behind
        # it must go too, or they would pile up while trials wait.
        for trial in list(self._open_trials):
            status = trial.status
            if status in FINISHED:
                del self._open_trials[trial]
            elif status == Trial.PENDING and pending is None:
                pending = trial
            elif status == Trial.PAUSED and paused is None:
                paused = trial
        if self.release_ended is not None:
            self.release_ended(tune_controller)
        return pending if pending is not None else paused


class InOrderFIFOScheduler(InOrder, FIFOScheduler):  # type: ignore[misc]
    """Ray's FIFO scheduler, choosing without a scan of every trial."""
