"""Optuna as Ray Tune's searcher, told the truth about trials ASHA stopped.

Ray's OptunaSearch tells Optuna that an ASHA-stopped trial is COMPLETE with its
truncated score (ray #15283), which teaches TPE that a 1-epoch score is a final result.
The searcher here tells Optuna such trials were PRUNED; Optuna then ranks them by their
intermediate values, which OptunaSearch already reports every epoch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, cast

import optuna
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from tuner.search.asha import TIME_ATTR
from tuner.search.bounded_tpe import BoundedTPESampler
from tuner.search.early_stops import EarlyStops
from tuner.search.ga_samplers import NSGAIIISampler, NSGAIISampler
from tuner.search.terminator import RegretStop
from tuner.search.warm import NOTHING, StartingPoints, seed_study
from tuner.spec import OptunaSampler
from tuner.spec.objectives import Constraint, violations


class PruningOptunaSearch(OptunaSearch):  # type: ignore[misc]
    """OptunaSearch that reports scheduler-stopped trials to Optuna as PRUNED."""

    def __init__(
        self,
        early_stops: EarlyStops,
        start: StartingPoints = NOTHING,
        constraints: Sequence[Constraint] = (),
        regret: RegretStop | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.early_stops = early_stops
        self.constraints = list(constraints)
        self.regret = regret  # stop_when: asked after each trial that ran to the end
        study = self._study()
        assert study is not None, "a space is given, so the study exists"
        seed_study(study, start)

    def _study(self) -> optuna.Study | None:
        # Ray's OptunaSearch makes its study once it has a space, in an attribute it leaves
        # unannotated (None at first): typed here, so that a check on it narrows.
        return cast("optuna.Study | None", self._ot_study)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.regret is not None and self.regret.reached is not None:
            # Little is left to gain: no new trial (Ray's marker is a string).
            return Searcher.FINISHED  # type: ignore[return-value]
        config: dict[str, Any] | None = super().suggest(trial_id)
        if trial_id in self._ot_trials:
            # What names the trial in MLflow and Ray: optuna-dashboard shows it.
            self._ot_trials[trial_id].set_user_attr("trial_id", trial_id)
        return config

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if self.constraints and result is not None and trial_id in self._ot_trials:
            # Optuna 5's samplers (TPE, GP, NSGA) read these once the trial is told, and
            # its best trials and front leave out the infeasible ones.
            trial = self._ot_trials[trial_id]
            for constraint, violation in zip(
                self.constraints, violations(self.constraints, result), strict=True
            ):
                trial.set_constraint(constraint.describe(), violation)
        if error or trial_id not in self.early_stops or trial_id in self._completed_trials:
            super().on_trial_complete(trial_id, result=result, error=error)
            study = self._study()
            if self.regret is not None and study is not None:
                self.regret.consider(study)
            return
        study = self._study()
        assert study is not None, "the study exists once a trial was suggested"
        ot_trial = self._ot_trials[trial_id]
        # Ray's Searcher types its metric as one name; OptunaSearch keeps a list of names
        # there for several objectives.
        metric: str | list[str] | None = self._metric
        if isinstance(metric, list):
            # Optuna keeps no intermediate values for several objectives.
            study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
            self._completed_trials.add(trial_id)
            return
        # Tune hands the result that made the scheduler stop the trial to the scheduler and
        # here, never to on_trial_result: report it, or Optuna would not know the value
        # the trial was judged on (a trial stopped at the first rung would have none).
        if result is not None and self._metric in result and TIME_ATTR in result:
            ot_trial.report(result[self._metric], result[TIME_ATTR])
        # No value: Optuna keeps the intermediate values, as with its own pruners.
        study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
        self._completed_trials.add(trial_id)


SAMPLERS: dict[str, Callable[[int | None], optuna.samplers.BaseSampler]] = {
    # With trials in parallel, TPE would otherwise suggest the running trials' neighbours
    # again: the constant liar counts them as bad until they report.
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, constant_liar=True),
    "gp": lambda seed: optuna.samplers.GPSampler(seed=seed),
    # Categorical params fall back to independent sampling; that is expected, not news.
    "cmaes": lambda seed: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    # Optuna's own keep a lock that Ray Tune cannot pickle (search.ga_samplers).
    "nsga2": lambda seed: NSGAIISampler(seed=seed),
    "nsga3": lambda seed: NSGAIIISampler(seed=seed),
}


def build_sampler(
    name: OptunaSampler,
    seed: int | None,
    *,
    conditional: bool = False,
    history: int | None = None,
) -> optuna.samplers.BaseSampler:
    """`history`: TPE models the best trials and the latest `history` (bounded_tpe.py)."""
    if name == "tpe" and conditional:
        return conditional_tpe(seed, history)
    if name == "tpe" and history is not None:
        return BoundedTPESampler(history, seed=seed, constant_liar=True)
    return SAMPLERS[name](seed)


def conditional_tpe(seed: int | None, history: int | None = None) -> optuna.samplers.TPESampler:
    """TPE that models the params a trial sampled together, per branch of the space.

    Independent TPE fits each param on every trial that sampled it, across branches;
    multivariate TPE with `group` splits the history into the groups of params that
    were sampled together (Optuna's answer for conditional spaces). On
    bench/search_conditional.py the conditional sweep reaches the flat sweep's final
    regret 5.8x cheaper; in a plain-Optuna check on a variant, independent TPE did no
    better on the conditional space than on the flat one (bench/README.md).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        options: dict[str, Any] = {"constant_liar": True, "multivariate": True, "group": True}
        if history is None:
            return optuna.samplers.TPESampler(seed=seed, **options)
        return BoundedTPESampler(history, seed=seed, **options)
