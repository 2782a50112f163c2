"""`stop_when: {regret_below: ...}`: the sweep ends when Optuna's regret bound says little
is left to gain.

The searcher asks after each trial that ran to the end (`RegretStop.consider`); once
the bound falls below the threshold it suggests no more trials, and this stopper's
`stop_all` ends the running ones after their current result. Ray pickles its stopper
and searcher with the experiment: like FailFast, this pickles as its key
(tuner.search.shared_by_key), so both and the driver share one per process; a resumed
sweep is watched again from its file.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import optuna
from ray.tune.stopper import Stopper

from tuner.search.shared_by_key import SharedByKey
from tuner.spec.stop_when import StopWhen

logger = logging.getLogger(__name__)


class RegretStop(SharedByKey, Stopper):  # type: ignore[misc]
    def __init__(self, key: str = "") -> None:
        super().__init__(key)
        self.rule: StopWhen | None = None
        self.reached: str | None = None  # why the sweep stopped, in words, once it did
        self.bound: float | None = None  # the last regret bound estimated

    def watch(self, rule: StopWhen | None) -> RegretStop:
        self.rule, self.reached, self.bound = rule, None, None
        return self

    def consider(self, study: optuna.Study) -> None:
        """Estimate the regret bound from `study`'s complete trials; stop below the rule."""
        if self.rule is None or self.reached is not None:
            return
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if len(complete) < self.rule.min_trials:
            return
        from optuna.terminator.improvement.evaluator import RegretBoundEvaluator

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # experimental, and deprecated upstream
                evaluator = RegretBoundEvaluator(min_n_trials=self.rule.min_trials, seed=0)
                self.bound = float(evaluator.evaluate(complete, study.direction))
        except (ValueError, RuntimeError) as exc:  # e.g. no shared search space
            logger.warning("could not estimate the regret bound: %s", exc)
            return
        if self.bound < self.rule.regret_below:
            self.reached = (
                f"the regret bound {self.bound:.4g} fell below {self.rule.regret_below:g} "
                f"after {len(complete)} complete trials"
            )

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.reached is not None
