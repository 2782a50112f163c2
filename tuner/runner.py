"""run_sweep(spec) -> SweepResult: the one place a ray.tune.Tuner is built and run."""

from __future__ import annotations

import logging
import math
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import ray
from mlflow.entities import RunStatus
from ray import tune
from ray.tune.logger import JsonLoggerCallback
from ray.tune.search import Searcher
from rich.console import Console

from tuner.defaults import DEFAULT_TRACKING_URI, SUBMISSION_ID_ENV
from tuner.experiments import Experiment, NothingToResume, latest_experiment
from tuner.export import best_test_metrics, log_best_model
from tuner.progress import ProgressTable
from tuner.ray_session import check_local_resources, quiet_driver_output, start_or_join
from tuner.searchers import EarlyStops, build_scheduler, build_search_algorithm
from tuner.space import param_space
from tuner.spec import SweepSpec
from tuner.storage import Storage, resolve_storage
from tuner.tracking import (
    TAG_EXPERIMENT_PATH,
    TAG_SUBMISSION,
    SweepRun,
    TrackingWriter,
    TrialTracker,
    check_tracking_reachable,
    existing_trial_runs,
)
from tuner.trainables import resolve_trainable, with_absolute_paths

logger = logging.getLogger(__name__)


class SweepFailed(RuntimeError):
    """The sweep ran but produced no usable trial (exit status 1)."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C (or `tuner stop`): Ray Tune stopped the trials and saved the experiment state."""

    def __init__(self, sweep: str, experiment_path: str) -> None:
        super().__init__(experiment_path)
        self.sweep = sweep
        self.experiment_path = experiment_path


class InterruptWatch(tune.Callback):  # type: ignore[misc]
    """Notices the Ctrl-C that Ray Tune turns into a graceful stop.

    Tune catches SIGINT, stops the trials, saves state and returns from fit() as if the
    sweep had finished, keeping the fact in a local variable. Tune installs its handler
    before calling callbacks' setup(), so ours goes on top and hands the signal on.
    """

    def __init__(self) -> None:
        self.interrupted = False

    def __getstate__(self) -> dict[str, Any]:
        return {"interrupted": False}

    def setup(
        self,
        stop: Any = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals only reach the main thread; Tune skips them too
        tune_handler = signal.getsignal(signal.SIGINT)

        def record(signum: int, frame: FrameType | None) -> None:
            self.interrupted = True
            if callable(tune_handler):
                tune_handler(signum, frame)

        signal.signal(signal.SIGINT, record)


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
def _restored_sigint() -> Iterator[None]:
    """Tune leaves its SIGINT handler installed after a normal finish; a later Ctrl-C
    (say, during the model export) would then be swallowed. Put the caller's back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class RunOptions:
    tracking_uri: str = DEFAULT_TRACKING_URI
    storage: str | None = None
    address: str | None = None  # an existing Ray cluster; None starts an embedded one
    spec_path: Path | None = None  # logged as the parent run's artifact
    num_cpus: int | None = None  # embedded Ray only; None uses every core
    console: Console = field(default_factory=lambda: Console(soft_wrap=True, highlight=False))


@dataclass(frozen=True)
class BestTrial:
    trial_id: str
    params: dict[str, Any]
    metric: str
    value: float
    run_id: str | None
    checkpoint: str | None


@dataclass(frozen=True)
class SweepResult:
    name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    experiment_path: str
    num_trials: int
    num_stopped_early: int
    num_failed: int
    num_restarted: int  # trials that lost their worker and resumed from a checkpoint
    best: BestTrial
    test_metrics: dict[str, float] = field(default_factory=dict)  # best model, test split


def _trainable_with_resources(spec: SweepSpec) -> Any:
    resources = {"cpu": spec.resources_per_trial.cpu, "gpu": spec.resources_per_trial.gpu}
    return tune.with_resources(resolve_trainable(spec.trainable), resources)


def build_tuner(
    spec: SweepSpec,
    experiment: Experiment,
    callbacks: list[tune.Callback],
    early_stops: EarlyStops,
    *,
    on_cluster: bool,
) -> tune.Tuner:
    search_alg = build_search_algorithm(spec, early_stops)
    return tune.Tuner(
        _trainable_with_resources(spec),
        param_space=param_space(spec),
        tune_config=tune.TuneConfig(
            metric=spec.metric,
            mode=spec.mode,
            search_alg=search_alg,
            scheduler=build_scheduler(spec, early_stops),
            num_samples=spec.num_samples,
            # Searchers get wrapped in a ConcurrencyLimiter; generators carry it themselves.
            max_concurrent_trials=(
                spec.max_concurrent_trials if isinstance(search_alg, Searcher) else None
            ),
            # A fresh worker per trial re-imports torch: measured 50 s vs 8 s for 12 trials.
            reuse_actors=True,
            trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=experiment.name,
            storage_path=experiment.parent,
            storage_filesystem=experiment.storage.filesystem,
            callbacks=[*callbacks, JsonLoggerCallback()],
            verbose=0,
            # The latest checkpoint is what a restart resumes from and what we export; the
            # one before it covers a crash mid-write. Ray snapshots experiment state every
            # num_to_keep checkpoints so that it never points at a deleted one.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            # Locally a failure is a bug in the trial: retrying it only repeats it.
            # On a cluster it may be a lost node: restart from the last checkpoint.
            failure_config=tune.FailureConfig(max_failures=3 if on_cluster else 0),
        ),
    )


def restore_tuner(
    spec: SweepSpec, experiment: Experiment, callbacks: list[tune.Callback]
) -> tune.Tuner:
    """The experiment's Tuner as Ray Tune saved it: unfinished and errored trials resume
    from their latest checkpoints, finished ones stay finished, the searcher keeps its
    history."""
    tuner = tune.Tuner.restore(
        experiment.path,
        _trainable_with_resources(spec),
        resume_errored=True,
        storage_filesystem=experiment.storage.filesystem,
    )
    # Ray restores the callbacks it pickled at the start, without their tracking thread
    # and terminal, and has no public way to pass new ones: hand it this driver's.
    local = tuner._local_tuner
    assert local is not None, "a driver (not a Ray Client) restores locally"
    local.get_run_config().callbacks = [*callbacks, JsonLoggerCallback()]
    return tuner


def run_sweep(spec: SweepSpec, options: RunOptions | None = None) -> SweepResult:
    """Run a sweep to the end and return its best trial; see the README for what it records."""
    options = options or RunOptions()
    quiet_driver_output()
    storage = resolve_storage(options.storage)
    _preflight(spec, options)
    started_ray = start_or_join(options.address, options.num_cpus)
    try:
        sweep = SweepRun.start(spec, options.spec_path, options.tracking_uri)
        experiment = Experiment.new(storage, spec.name)
        return _run_tracked(with_absolute_paths(spec), options, sweep, experiment, resumed=False)
    finally:
        if started_ray:
            ray.shutdown()


def resume_sweep(sweep_name: str, options: RunOptions | None = None) -> SweepResult:
    """Finish the latest experiment of a sweep from its storage, in its MLflow runs."""
    options = options or RunOptions()
    quiet_driver_output()
    experiment = latest_experiment(resolve_storage(options.storage), sweep_name)
    spec = experiment.load_spec()
    _preflight(spec, options)
    if not tune.Tuner.can_restore(experiment.path, experiment.storage.filesystem):
        raise NothingToResume(f"{experiment.uri}: Ray Tune saved no state to resume from")
    started_ray = start_or_join(options.address, options.num_cpus)
    try:
        sweep = SweepRun.find(spec, options.tracking_uri, experiment.uri)
        if sweep is None:  # the tracking store lost it: the rest goes into a new run
            sweep = SweepRun.start(spec, None, options.tracking_uri)
        elif sweep.status == RunStatus.to_string(RunStatus.FINISHED):
            raise NothingToResume(f"sweep {spec.name!r} ({experiment.uri}) already finished")
        else:
            sweep.reopen()
        return _run_tracked(spec, options, sweep, experiment, resumed=True)
    finally:
        if started_ray:
            ray.shutdown()


def _preflight(spec: SweepSpec, options: RunOptions) -> None:
    """Every check that can fail in seconds, before Ray starts or MLflow gets a run."""
    resolve_trainable(spec.trainable)  # import errors surface before anything starts
    if options.address is None and not ray.is_initialized():
        check_local_resources(spec, options.num_cpus)
    check_tracking_reachable(options.tracking_uri)


def _run_tracked(
    spec: SweepSpec,
    options: RunOptions,
    sweep: SweepRun,
    experiment: Experiment,
    *,
    resumed: bool,
) -> SweepResult:
    early_stops = EarlyStops.shared(experiment.uri)
    storage = experiment.storage
    writer = TrackingWriter(sweep.client, sweep.experiment_id)
    tracker = TrialTracker(writer, sweep.run_id, spec.params, early_stops, storage.uri_of)
    interrupts = InterruptWatch()
    callbacks = [tracker, ProgressTable(spec, early_stops, options.console), interrupts]
    try:
        tags = {TAG_EXPERIMENT_PATH: experiment.uri}
        if os.environ.get(SUBMISSION_ID_ENV):
            tags[TAG_SUBMISSION] = os.environ[SUBMISSION_ID_ENV]
        sweep.set_tags(tags)
        if resumed:
            tracker.continue_runs(
                existing_trial_runs(sweep.client, sweep.experiment_id, sweep.run_id, spec.metric)
            )
            tuner = restore_tuner(spec, experiment, callbacks)
        else:
            experiment.save_spec(spec)
            on_cluster = options.address is not None
            tuner = build_tuner(spec, experiment, callbacks, early_stops, on_cluster=on_cluster)
        with _restored_sigint(), ray_file_loggers_off():
            results = tuner.fit()
        if interrupts.interrupted:
            tracker.end_open_runs("interrupted")
            raise SweepInterrupted(spec.name, experiment.uri)
        writer.flush()
        failed = results.num_errors
        best_result = _best_result(spec, results)
        if best_result is None:
            raise SweepFailed(
                f"sweep {spec.name!r}: no trial finished with a value of {spec.metric!r} "
                f"({failed} of {len(results)} trials failed)"
            )
        best = _best_trial(spec, best_result, writer, storage)
        sweep.record_best(spec.metric, best.value, best.params, best.trial_id, best.run_id)
        test_metrics: dict[str, float] = {}
        if best.run_id is not None and best_result.checkpoint is not None:
            with tempfile.TemporaryDirectory(prefix="tuner-best-") as directory:
                best_result.checkpoint.to_directory(directory)
                log_best_model(sweep.client, best.run_id, spec.trainable, directory)
                test_metrics = best_test_metrics(spec.trainable, directory)
            sweep.record_test(test_metrics, best.run_id)
        restarted = len(tracker.restarts)
        sweep.finish(
            RunStatus.FINISHED,
            {
                "tuner.failed_trials": str(failed),
                "tuner.stopped_early": str(len(early_stops)),
                "tuner.restarted_trials": str(restarted),
            },
        )
        return SweepResult(
            name=spec.name,
            tracking_uri=options.tracking_uri,
            experiment_id=sweep.experiment_id,
            parent_run_id=sweep.run_id,
            experiment_path=experiment.uri,
            num_trials=len(results),
            num_stopped_early=len(early_stops),
            num_failed=failed,
            num_restarted=restarted,
            best=best,
            test_metrics=test_metrics,
        )
    except KeyboardInterrupt:
        _close_quietly(writer, sweep, RunStatus.KILLED)
        raise
    except BaseException:
        _close_quietly(writer, sweep, RunStatus.FAILED)
        raise
    finally:
        writer.close()


def _best_result(spec: SweepSpec, results: tune.ResultGrid) -> tune.Result | None:
    """The trial with the best last-reported metric among trials that did not fail.

    A trial's score is its final reported value, as ASHA and Optuna see it. A failed
    trial's last value is not a result, and NaN or infinity never wins.
    """
    sign = 1.0 if spec.mode == "max" else -1.0
    best: tune.Result | None = None
    best_score = -math.inf
    for index in range(len(results)):
        result = results[index]
        value = (result.metrics or {}).get(spec.metric)
        if result.error is not None or not isinstance(value, int | float):
            continue
        if math.isfinite(value) and sign * value > best_score:
            best, best_score = result, sign * value
    return best


def _best_trial(
    spec: SweepSpec, best: tune.Result, writer: TrackingWriter, storage: Storage
) -> BestTrial:
    """What the user is told about the trial _best_result chose (its metric is a number)."""
    metrics = best.metrics or {}
    trial_id = str(metrics["trial_id"])
    return BestTrial(
        trial_id=trial_id,
        params={name: (best.config or {}).get(name) for name in spec.params},
        metric=spec.metric,
        value=float(metrics[spec.metric]),
        run_id=writer.run_id(trial_id),
        checkpoint=storage.uri_of(best.checkpoint.path) if best.checkpoint else None,
    )


def _close_quietly(writer: TrackingWriter, sweep: SweepRun, status: int) -> None:
    """Record how the sweep ended without hiding the exception that ended it."""
    try:
        writer.flush()
    except Exception:
        logger.warning("could not flush trial tracking", exc_info=True)
    try:
        sweep.finish(status)
    except Exception:
        logger.warning("could not close the sweep's MLflow run", exc_info=True)
