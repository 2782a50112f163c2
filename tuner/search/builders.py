"""Searcher (what to try) and scheduler (when to stop) for a sweep, keyed by its kinds."""

from __future__ import annotations

import optuna
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import BasicVariantGenerator, SearchAlgorithm, Searcher

from tuner.search.asha import TIME_ATTR, ParetoASHAScheduler, RecordingASHAScheduler
from tuner.search.capped import CappedVariantGenerator
from tuner.search.conditional import ConditionalSpace, ConditionalVariants
from tuner.search.distributions import optuna_space
from tuner.search.early_stops import EarlyStops
from tuner.search.fifo_order import InOrderFIFOScheduler
from tuner.search.optuna_search import PruningOptunaSearch, build_sampler
from tuner.search.pbt import Lineage
from tuner.search.persistent_study import StudyStorage
from tuner.search.population_schedulers import build_pbt
from tuner.search.terminator import RegretStop
from tuner.search.warm import NOTHING, StartingPoints
from tuner.spec import (
    AshaScheduler,
    FifoScheduler,
    GridSearcher,
    OptunaSearcher,
    PbtScheduler,
    RandomSearcher,
    SweepSpec,
)
from tuner.spec.conditions import is_conditional


def suggested_by_a_searcher(spec: SweepSpec) -> bool:
    """Whether a Searcher (Optuna, or a conditional grid or random space) suggests the
    trials, rather than Ray's grid and random generator: Tune then counts the trials."""
    return isinstance(spec.searcher, OptunaSearcher) or is_conditional(spec.params)


def build_search_algorithm(
    spec: SweepSpec,
    early_stops: EarlyStops,
    start: StartingPoints = NOTHING,
    regret: RegretStop | None = None,
) -> SearchAlgorithm | Searcher:
    """`regret`: what `stop_when` asks after each trial that ran to the end (Optuna only)."""
    searcher = spec.searcher
    # Tune ignores TuneConfig.max_concurrent_trials for a BasicVariantGenerator instance
    # (it only wraps Searchers): the generator must get the limit itself.
    max_concurrent = spec.max_concurrent_trials or 0
    if isinstance(spec.scheduler, PbtScheduler):
        # PBT needs its whole population at once: the trials take turns on what fits
        # (PBT pauses one at a perturbation point while others wait), where a capped
        # generator would make the later trials only after the first ones ended.
        max_concurrent = 0
    max_trials = spec.max_trials
    if isinstance(searcher, GridSearcher | RandomSearcher):
        seed = searcher.seed if isinstance(searcher, RandomSearcher) else None
        if is_conditional(spec.params):
            return ConditionalVariants(spec, seed, start.points)  # Tune caps it at num_samples
        # Ray's generator pops its points: hand it a list of its own.
        points = [dict(point) for point in start.points]
        if max_trials is not None:
            return CappedVariantGenerator(
                max_trials,
                max_concurrent=max_concurrent,
                random_state=seed,
                points_to_evaluate=points,
            )
        return BasicVariantGenerator(
            max_concurrent=max_concurrent, random_state=seed, points_to_evaluate=points
        )
    if isinstance(searcher, OptunaSearcher):
        # Optuna logs every trial at INFO; the progress table already shows them.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        multi = spec.is_multi_objective
        return PruningOptunaSearch(
            early_stops,
            start,
            space=ConditionalSpace(spec.params)
            if is_conditional(spec.params)
            else optuna_space(spec),
            constraints=spec.constraints,
            regret=regret if spec.stop_when is not None else None,
            # Ray's OptunaSearch takes lists for several objectives.
            metric=[o.metric for o in spec.objective_list] if multi else spec.metric,
            mode=[o.mode for o in spec.objective_list] if multi else spec.mode,
            sampler=build_sampler(
                searcher.sampler,
                searcher.seed,
                conditional=is_conditional(spec.params),
                history=searcher.history,
            ),
            # Named after the sweep: the default "optuna" would merge sweeps in a shared store.
            study_name=spec.name,
            storage=StudyStorage(searcher.storage) if searcher.storage is not None else None,
        )
    raise AssertionError(f"unhandled searcher {searcher!r}")


def build_scheduler(
    spec: SweepSpec,
    early_stops: EarlyStops,
    lineage: Lineage | None = None,
    *,
    runs_to_its_end: bool = True,
) -> TrialScheduler:
    """`lineage`: where a PBT sweep records its exploits (with its mutations).
    `runs_to_its_end`: the trainable is a function, whose code after its last report
    runs if ASHA lets a trial at max_t go on; a class Trainable has none (Ray calls its
    step() until it is stopped), so its trials stop at max_t."""
    scheduler = spec.scheduler
    if isinstance(scheduler, FifoScheduler):
        return InOrderFIFOScheduler()
    if isinstance(scheduler, PbtScheduler):
        assert lineage is not None, "a PBT sweep records its lineage"
        return build_pbt(spec, lineage, TIME_ATTR)
    if isinstance(scheduler, AshaScheduler) and spec.is_multi_objective:
        return ParetoASHAScheduler(
            early_stops,
            [(o.metric, 1.0 if o.mode == "max" else -1.0) for o in spec.objective_list],
            time_attr=TIME_ATTR,
            max_t=scheduler.max_t,
            grace_period=scheduler.grace_period,
            reduction_factor=scheduler.reduction_factor,
            stop_at_max_t=not runs_to_its_end,
        )
    if isinstance(scheduler, AshaScheduler):
        return RecordingASHAScheduler(
            early_stops,
            time_attr=TIME_ATTR,
            max_t=scheduler.max_t,
            grace_period=scheduler.grace_period,
            reduction_factor=scheduler.reduction_factor,
            stop_at_max_t=not runs_to_its_end,
        )
    raise AssertionError(f"unhandled scheduler {scheduler!r}")
