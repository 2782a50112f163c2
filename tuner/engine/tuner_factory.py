"""The one place a ray.tune.Tuner is built (or restored) from a sweep."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ray import tune
from ray.tune.logger import JsonLoggerCallback
from ray.tune.search import Searcher

from tuner.engine.budget import BudgetStop
from tuner.engine.checkpoints import trial_space
from tuner.engine.ended_trials import EndedTrials
from tuner.engine.experiments import Experiment
from tuner.engine.fixed_resources import placement_groups_off, ray_started_here
from tuner.engine.gone_checkpoints import GoneCheckpoints
from tuner.engine.lost_workers import recover_trials_on_lost_workers
from tuner.engine.multi_worker import (
    concurrent_trials,
    data_parallel,
    trial_resources,
    user_worker,
    worker_function,
)
from tuner.engine.population import lineage_of
from tuner.engine.prestarted_workers import trial_actors_on_prestarted_workers
from tuner.engine.registry_memo import trainables_remembered
from tuner.engine.shared_data import SharedData
from tuner.engine.trainables import resolve_trainable
from tuner.engine.trial_config import TrialConfig, no_credentials_in_runtime_env
from tuner.engine.unread_histories import result_histories_unread
from tuner.engine.user_code import (
    TUNE_REPORT,
    WORKER_REPORT,
    reuses_actors,
    saves_checkpoints,
    user_class,
    user_function,
)
from tuner.search.builders import (
    build_scheduler,
    build_search_algorithm,
    suggested_by_a_searcher,
)
from tuner.search.early_stops import EarlyStops
from tuner.search.fifo_order import InOrder
from tuner.search.stops import FailFast, build_stoppers, combined
from tuner.search.terminator import RegretStop
from tuner.search.warm import NOTHING, StartingPoints
from tuner.spec import SweepSpec

logger = logging.getLogger(__name__)


@contextmanager
def ray_file_loggers_off() -> Iterator[None]:
    """MLflow holds the metrics: Ray's CSV and TensorBoard files per result cost ~5% of a
    sweep of short trials. Its JSON log stays (build_tuner adds it): resume reads it.
    Ray reads the switch from the environment when fit() starts; put it back after, so
    that other Tune runs in this process keep Ray's defaults."""
    previous = os.environ.get(_NO_AUTO_LOGGERS)
    os.environ[_NO_AUTO_LOGGERS] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_NO_AUTO_LOGGERS, None)
        else:
            os.environ[_NO_AUTO_LOGGERS] = previous


_NO_AUTO_LOGGERS = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"


@contextmanager
def fitting(spec: SweepSpec, *, on_cluster: bool) -> Iterator[None]:
    """What a sweep's fit() runs within: Ray's per-result file loggers off, the trainable
    looked up once (registry_memo), no trial's result file read back at the end
    (unread_histories), and on this machine's own Ray no placement group per trial
    (fixed_resources). Each is the driver's time per trial, bounded as sweeps grow. On
    it, the first trials start on the workers Ray started with it (prestarted_workers)."""
    fixed = not on_cluster and not spec.resources_per_trial.distributed and ray_started_here()
    with (
        ray_file_loggers_off(),
        trainables_remembered(),
        result_histories_unread(),
        placement_groups_off(fixed),
        trial_actors_on_prestarted_workers(),
    ):
        yield


def trainable_with_resources(spec: SweepSpec, withheld: dict[str, Any]) -> Any:
    """The trainable Ray runs; `withheld`: the config entries kept out of Ray's state
    (secrets), which the trials get back in their own process."""
    resources = trial_resources(spec.resources_per_trial)
    trainable: Any = resolve_trainable(spec.trainable)
    shared = SharedData.of(spec)  # a built-in trainer's data: loaded once, here
    if spec.resources_per_trial.distributed:  # a function (check_trainable said so)
        builtin = spec.trainable.startswith("builtin:")
        worker = worker_function(spec.trainable) if builtin else user_worker(trainable)
        if shared is not None:
            worker = shared.around(worker)
        trainable = data_parallel(worker, spec.resources_per_trial, trainable.__name__)
    elif shared is not None:
        trainable = shared.around(trainable)
    trial_config = TrialConfig.needed(spec.config, withheld)
    no_credentials_in_runtime_env()
    # Results are checked for the metric (each objective's) and made plain numbers in
    # the worker.
    required = tuple(objective.metric for objective in spec.objective_list)
    if isinstance(trainable, type) and issubclass(trainable, tune.Trainable):
        trainable = user_class(trainable, required, trial_config)
    elif not isinstance(trainable, type):
        reports = WORKER_REPORT if spec.resources_per_trial.distributed else TUNE_REPORT
        trainable = user_function(trainable, required, trial_config, reports)
    return tune.with_resources(trainable, resources)


def trial_dirname(trial: Any) -> str:
    """A trial's folder: `trial_<id>`. A module-level function, not a lambda: Ray writes
    it into every trial's saved state, and cloudpickle copies a lambda there by value
    (1.3 KB of base64 per trial, kept in memory with the trial's cached state and dumped
    again on each change of it), a function by its name (~60 bytes)."""
    return f"trial_{trial.trial_id}"


def fresh_actors_note(spec: SweepSpec) -> str | None:
    """One line for the user when trials cannot reuse workers, else None."""
    trainable = resolve_trainable(spec.trainable)
    if reuses_actors(trainable):
        return None
    return (
        f"note: {spec.trainable} has no reset_config(): each trial starts a fresh worker; "
        "implement reset_config(new_config) -> True to let trials reuse workers"
    )


def build_tuner(
    spec: SweepSpec,
    experiment: Experiment,
    callbacks: list[tune.Callback],
    early_stops: EarlyStops,
    *,
    withheld: dict[str, Any],
    on_cluster: bool,
    start: StartingPoints = NOTHING,
) -> tune.Tuner:
    """`spec` is the sweep without its secrets (those are in `withheld`)."""
    recover_trials_on_lost_workers()
    if spec.resources_per_trial.distributed:
        # Tune reserves nothing for Ray Train's workers: cap trials at what fits.
        import ray

        cap = concurrent_trials(spec, ray.cluster_resources())
        spec = spec.model_copy(update={"max_concurrent_trials": cap})
    regret = RegretStop.shared(experiment.uri).watch(spec.stop_when)
    search_alg = build_search_algorithm(spec, early_stops, start, regret)
    user_trainable = resolve_trainable(spec.trainable)
    return tune.Tuner(
        trainable_with_resources(spec, withheld),
        param_space=trial_space(spec),
        tune_config=tune.TuneConfig(
            metric=spec.metric,
            mode=spec.mode,
            search_alg=search_alg,
            scheduler=_scheduler(spec, experiment, early_stops, user_trainable),
            num_samples=_num_samples(spec),
            # Searchers get wrapped in a ConcurrencyLimiter; generators carry it themselves.
            max_concurrent_trials=(
                spec.max_concurrent_trials if isinstance(search_alg, Searcher) else None
            ),
            # A fresh worker per trial re-imports torch: measured 50 s vs 8 s for 12 trials.
            # A class Trainable without reset_config() cannot be reused: Ray would fail
            # every trial that lands on a used worker.
            # A multi-worker trial's driver owns its Train run: a reused one would
            # leave the workers of a stopped trial running.
            reuse_actors=reuses_actors(user_trainable) and not spec.resources_per_trial.distributed,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=experiment.name,
            storage_path=experiment.parent,
            storage_filesystem=experiment.storage.filesystem,
            callbacks=[*callbacks, JsonLoggerCallback()],
            stop=combined(
                [
                    *build_stoppers(spec),
                    FailFast.shared(experiment.uri, spec.fail_fast_after),
                    regret,
                    *([BudgetStop.shared(experiment.uri)] if spec.budget is not None else []),
                ]
            ),
            verbose=0,
            # Every checkpoint stays while the sweep runs: with num_to_keep, Ray deletes
            # old ones before the experiment snapshot that stops naming them reaches
            # storage, and a driver lost in between leaves a trial that cannot resume
            # (seen on S3: 1 resume in 3). It also forced a snapshot every num_to_keep
            # checkpoints (ray #31613). prune_checkpoints thins them when the sweep ends.
            # A class without save_checkpoint() still ends well: no checkpoint at the end.
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=None,
                checkpoint_at_end=None if saves_checkpoints(user_trainable) else False,
            ),
            # Locally a failure is a bug in the trial: retrying it only repeats it.
            # On a cluster it may be a lost node: restart from the last checkpoint.
            failure_config=tune.FailureConfig(max_failures=3 if on_cluster else 0),
        ),
    )


def _scheduler(
    spec: SweepSpec, experiment: Experiment, early_stops: EarlyStops, user_trainable: Any
) -> Any:
    """The sweep's scheduler; one that chooses in order also lets ended trials go."""
    is_class = isinstance(user_trainable, type) and issubclass(user_trainable, tune.Trainable)
    scheduler = build_scheduler(
        spec, early_stops, lineage_of(spec, experiment.uri), runs_to_its_end=not is_class
    )
    if isinstance(scheduler, InOrder):
        scheduler.release_ended = EndedTrials.shared(experiment.uri).release_from
    return scheduler


def _num_samples(spec: SweepSpec) -> int:
    """Tune counts a Searcher's trials (Optuna's, a conditional space's) itself: all
    the sweep's trials, up to the budget's max_trials. Ray's grid and random generator
    repeats its grid num_samples times and stops at max_trials by itself."""
    if suggested_by_a_searcher(spec):
        max_trials = spec.max_trials
        expected = spec.expected_trials()
        return expected if max_trials is None else min(expected, max_trials)
    return spec.num_samples


def restore_tuner(
    spec: SweepSpec,
    experiment: Experiment,
    callbacks: list[tune.Callback],
    withheld: dict[str, Any],
    say: Callable[[str], None],
) -> tune.Tuner:
    """The experiment's Tuner as Ray Tune saved it: unfinished and errored trials resume
    from their latest checkpoints (or, those gone, older ones: `say` tells), finished
    ones stay finished, the searcher keeps its history."""
    recover_trials_on_lost_workers()
    RegretStop.shared(experiment.uri).watch(spec.stop_when)  # the restored searcher asks it
    with result_histories_unread():  # Ray reads the sweep back as it restores
        tuner = tune.Tuner.restore(
            experiment.path,
            trainable_with_resources(spec, withheld),
            resume_errored=True,
            storage_filesystem=experiment.storage.filesystem,
        )
    # Ray restores the callbacks it pickled at the start, without their tracking thread
    # and terminal, and has no public way to pass new ones: hand it this driver's.
    local = tuner._local_tuner
    assert local is not None, "a driver (not a Ray Client) restores locally"
    # GoneCheckpoints last: the saved callbacks' states go back by their place in the list.
    local.get_run_config().callbacks = [*callbacks, JsonLoggerCallback(), GoneCheckpoints(say)]
    return tuner
