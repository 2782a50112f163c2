"""The next trial to run is the one Ray's FIFO rule picks, without a scan of all trials."""

from __future__ import annotations

import random
from typing import Any

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler

from tuner.search.asha import RecordingASHAScheduler
from tuner.search.early_stops import EarlyStops
from tuner.search.fifo_order import InOrderFIFOScheduler

STATUSES = [Trial.PENDING, Trial.RUNNING, Trial.PAUSED, Trial.TERMINATED, Trial.ERROR]


class Trials:
    """What a scheduler reads of Ray Tune's controller: its trials, in order."""

    def __init__(self) -> None:
        self.trials: list[Trial] = []

    def get_trials(self) -> list[Trial]:
        return self.trials


def new_trial(number: int) -> Trial:
    trial = Trial("null", stub=True, trial_id=f"t{number:05d}")
    trial.set_status(Trial.PENDING)
    return trial


@pytest.mark.parametrize(
    "scheduler",
    [
        InOrderFIFOScheduler(),
        RecordingASHAScheduler(
            EarlyStops(), time_attr="training_iteration", max_t=9, grace_period=1,
            reduction_factor=3,
        ),
    ],
    ids=["fifo", "asha"],
)  # fmt: skip
def test_it_chooses_the_trial_rays_fifo_rule_chooses(scheduler: Any) -> None:
    scheduler.set_search_properties("score", "max", config={})
    rays_rule = FIFOScheduler()
    controller = Trials()
    rng = random.Random(0)
    for step in range(3000):
        if rng.random() < 0.3:
            trial = new_trial(step)
            controller.trials.append(trial)
            scheduler.on_trial_add(controller, trial)
        if controller.trials and rng.random() < 0.8:
            # Trials mostly finish, as in a long sweep; some pause, restart or wait.
            trial = rng.choice(controller.trials[-20:])
            if trial.status not in (Trial.TERMINATED, Trial.ERROR):
                trial.set_status(rng.choices(STATUSES, weights=[1, 2, 1, 5, 1])[0])
        # Trials stands in for Ray's TuneController: the rule reads only get_trials().
        assert scheduler.choose_trial_to_run(controller) is rays_rule.choose_trial_to_run(
            controller  # type: ignore[arg-type]
        )
    # What it keeps is the trials still open, not the sweep's history.
    still_open = [t for t in controller.trials if t.status not in (Trial.TERMINATED, Trial.ERROR)]
    assert len(scheduler._open_trials) == len(still_open)
    assert len(controller.trials) > 800


def test_a_trial_added_finished_is_never_kept() -> None:
    scheduler = InOrderFIFOScheduler()
    controller = Trials()
    done = new_trial(1)
    done.set_status(Trial.TERMINATED)  # a finished trial brought back by a resume
    controller.trials.append(done)
    scheduler.on_trial_add(controller, done)
    assert scheduler.choose_trial_to_run(controller) is None
    assert not scheduler._open_trials
