"""Searcher (what to try) and scheduler (when to stop) builders, keyed by the spec's kinds.

Two seams are closed here:
- Ray's OptunaSearch tells Optuna that an ASHA-stopped trial is COMPLETE with its
  truncated score (ray #15283), which teaches TPE that a 1-epoch score is a final
  result. We record which trials the scheduler stopped early and tell Optuna they were
  PRUNED; Optuna then ranks them by their intermediate values, which OptunaSearch
  already reports every epoch.
- Ray's ASHA lets a trial go on past a rung when it beats the interpolated
  (1 - 1/reduction_factor) percentile of the trials recorded there before it. That
  passes a 2nd of 3 or a 3rd of 7, where ASHA's paper (and Optuna's successive halving)
  promotes the top n // reduction_factor of the rung. Ray has no public hook for the
  rule, so our scheduler swaps in a subclass of its bracket that applies the paper's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import optuna
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.schedulers.async_hyperband import _Bracket
from ray.tune.search import BasicVariantGenerator, SearchAlgorithm, Searcher
from ray.tune.search.optuna import OptunaSearch

from tuner.space import optuna_space
from tuner.spec import (
    AshaScheduler,
    FifoScheduler,
    GridSearcher,
    OptunaSampler,
    OptunaSearcher,
    RandomSearcher,
    SweepSpec,
)

TIME_ATTR = "training_iteration"


class EarlyStops:
    """The trials a scheduler stopped before max_t, shared by scheduler, searcher, tracker.

    Ray pickles the scheduler and searcher into the experiment and unpickles them on
    restore, apart from each other and from our callbacks. A ledger therefore pickles as
    its key: every copy unpickled in a process is that process's one ledger for the key.
    """

    _shared: ClassVar[dict[str, EarlyStops]] = {}

    def __init__(self, key: str = "") -> None:
        self.key = key
        self._trial_ids: set[str] = set()

    @classmethod
    def shared(cls, key: str) -> EarlyStops:
        """The process's ledger for `key` (an experiment path), created on first use."""
        if key not in cls._shared:
            cls._shared[key] = cls(key)
        return cls._shared[key]

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (EarlyStops.shared, (self.key,))

    def add(self, trial_id: str) -> None:
        self._trial_ids.add(trial_id)

    def __contains__(self, trial_id: object) -> bool:
        return trial_id in self._trial_ids

    def __len__(self) -> int:
        return len(self._trial_ids)


class TopFractionBracket(_Bracket):  # type: ignore[misc]
    """An ASHA bracket that promotes a trial past a rung if it ranks in the top
    n // reduction_factor of the n trials recorded there, itself included (at least the
    best so far goes on).

    On bench.search (Hartmann-6, 20 seeds, one trial at a time) Ray's rule let 77-86% of
    the trials through each rung against 75-79% with this one, so the same epochs bought
    fewer configurations. Median regret at a quarter, half and all of the budget: 1.381,
    0.603, 0.263 with Ray's rule; 1.058, 0.439, 0.186 with this one; 0.990, 0.429, 0.249
    for Optuna's successive halving.
    """

    def cutoff(self, recorded: dict[str, float]) -> float | None:
        # Ray compares `reward < cutoff` (rewards are signed so that higher is better):
        # returning the k-th best earlier reward keeps exactly the trials ranked k or better.
        earlier = sorted((r for r in recorded.values() if not math.isnan(r)), reverse=True)
        promoted = max(1, int((len(earlier) + 1) // self.rf))
        if promoted > len(earlier):
            return None
        return earlier[promoted - 1]


class RecordingASHAScheduler(ASHAScheduler):  # type: ignore[misc]
    """ASHA with top-fraction brackets, recording its early stops (a STOP at max_t is a
    normal end, not one)."""

    def __init__(
        self,
        early_stops: EarlyStops,
        *,
        time_attr: str,
        max_t: int,
        grace_period: int,
        reduction_factor: float,
    ) -> None:
        super().__init__(
            time_attr=time_attr,
            max_t=max_t,
            grace_period=grace_period,
            reduction_factor=reduction_factor,
        )
        self.early_stops = early_stops
        self._brackets = [TopFractionBracket(grace_period, max_t, reduction_factor, s=0)]

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        action: str = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and result.get(self._time_attr, 0) < self._max_t:
            self.early_stops.add(trial.trial_id)
        return action


class PruningOptunaSearch(OptunaSearch):  # type: ignore[misc]
    """OptunaSearch that reports scheduler-stopped trials to Optuna as PRUNED."""

    def __init__(self, early_stops: EarlyStops, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.early_stops = early_stops

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if error or trial_id not in self.early_stops or trial_id in self._completed_trials:
            super().on_trial_complete(trial_id, result=result, error=error)
            return
        assert self._ot_study is not None, "the study exists once a trial was suggested"
        ot_trial = self._ot_trials[trial_id]
        # Tune hands the result that made the scheduler stop the trial to the scheduler and
        # here, never to on_trial_result: report it, or Optuna would not know the value
        # the trial was judged on (a trial stopped at the first rung would have none).
        if result is not None and self._metric in result and TIME_ATTR in result:
            ot_trial.report(result[self._metric], result[TIME_ATTR])
        # No value: Optuna keeps the intermediate values, as with its own pruners.
        self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
        self._completed_trials.add(trial_id)


SAMPLERS: dict[str, Callable[[int | None], optuna.samplers.BaseSampler]] = {
    # With trials in parallel, TPE would otherwise suggest the running trials' neighbours
    # again: the constant liar counts them as bad until they report.
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, constant_liar=True),
    "gp": lambda seed: optuna.samplers.GPSampler(seed=seed),
    # Categorical params fall back to independent sampling; that is expected, not news.
    "cmaes": lambda seed: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
}


def build_sampler(name: OptunaSampler, seed: int | None) -> optuna.samplers.BaseSampler:
    return SAMPLERS[name](seed)


def build_search_algorithm(spec: SweepSpec, early_stops: EarlyStops) -> SearchAlgorithm | Searcher:
    searcher = spec.searcher
    # Tune ignores TuneConfig.max_concurrent_trials for a BasicVariantGenerator instance
    # (it only wraps Searchers): the generator must get the limit itself.
    max_concurrent = spec.max_concurrent_trials or 0
    if isinstance(searcher, GridSearcher):
        return BasicVariantGenerator(max_concurrent=max_concurrent)
    if isinstance(searcher, RandomSearcher):
        return BasicVariantGenerator(max_concurrent=max_concurrent, random_state=searcher.seed)
    if isinstance(searcher, OptunaSearcher):
        # Optuna logs every trial at INFO; the progress table already shows them.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return PruningOptunaSearch(
            early_stops,
            space=optuna_space(spec),
            metric=spec.metric,
            mode=spec.mode,
            sampler=build_sampler(searcher.sampler, searcher.seed),
            # Named after the sweep: the default "optuna" would merge sweeps in a shared store.
            study_name=spec.name,
        )
    raise AssertionError(f"unhandled searcher {searcher!r}")


def build_scheduler(spec: SweepSpec, early_stops: EarlyStops) -> TrialScheduler:
    scheduler = spec.scheduler
    if isinstance(scheduler, FifoScheduler):
        return FIFOScheduler()
    if isinstance(scheduler, AshaScheduler):
        return RecordingASHAScheduler(
            early_stops,
            time_attr=TIME_ATTR,
            max_t=scheduler.max_t,
            grace_period=scheduler.grace_period,
            reduction_factor=scheduler.reduction_factor,
        )
    raise AssertionError(f"unhandled scheduler {scheduler!r}")
