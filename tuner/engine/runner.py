"""run_sweep and resume_sweep: start or join Ray, open the MLflow run, fit, record the best."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from mlflow.entities import RunStatus
from rich.console import Console

from tuner.defaults import DEFAULT_TRACKING_URI, SUBMISSION_ID_ENV
from tuner.engine.budget import BudgetStop, end_reason, stop_tags, trials_capped
from tuner.engine.checkpoints import prune_checkpoints
from tuner.engine.closing import close_interrupted, close_quietly, interrupted, resumable
from tuner.engine.driver_lock import driver_lock
from tuner.engine.end_plots import EndPlots
from tuner.engine.ended_trials import EndedTrials
from tuner.engine.experiments import Experiment, latest_experiment
from tuner.engine.fail_fast import FailFastWatch
from tuner.engine.file_changes import changes_note
from tuner.engine.finished_trials import CompactFinishedTrials
from tuner.engine.front import best_result, record_front_of
from tuner.engine.live_plots import LivePlots
from tuner.engine.moments import TrialMoments
from tuner.engine.outcome import (
    Exported,
    SweepFailed,
    SweepResult,
    best_trial,
    export_best,
    sweep_note,
)
from tuner.engine.phases import Phases
from tuner.engine.population import lineage_of, schedule_tags
from tuner.engine.preflight import preflight
from tuner.engine.pretrained import prepare_init_from
from tuner.engine.reopen import reopen_sweep
from tuner.engine.session import needs_state_api, quiet_driver_output, start_or_join
from tuner.engine.signals import InterruptsHeld, InterruptWatch, restored_signal_handlers
from tuner.engine.startup import start_sweep
from tuner.engine.state_digest import TAG_STATE_DIGEST, state_digest
from tuner.engine.storage import resolve_storage
from tuner.engine.trainables import dataset_of, with_absolute_paths
from tuner.engine.tuner_factory import (
    build_tuner,
    fitting,
    fresh_actors_note,
    restore_tuner,
)
from tuner.engine.warm_start import starting_points
from tuner.search.early_stops import EarlyStops
from tuner.search.stops import FailFast
from tuner.search.terminator import RegretStop
from tuner.search.warm import StartingPoints
from tuner.spec import AshaScheduler, SweepSpec, with_budget
from tuner.spec.secrets import secrets_back
from tuner.tracking.models import import_model_logging
from tuner.tracking.progress import ProgressTable
from tuner.tracking.results import error_hint
from tuner.tracking.runs import SweepRun, existing_trial_runs
from tuner.tracking.tags import TAG_EXPERIMENT_PATH, TAG_SUBMISSION
from tuner.tracking.trials import TrialTracker
from tuner.tracking.writer import TrackingWriter


@dataclass
class RunOptions:
    tracking_uri: str = DEFAULT_TRACKING_URI
    storage: str | None = None
    address: str | None = None  # an existing Ray cluster; None starts an embedded one
    spec_path: Path | None = None  # logged as the parent run's artifact
    num_cpus: int | None = None  # embedded Ray only; None uses every core
    console: Console = field(default_factory=lambda: Console(soft_wrap=True, highlight=False))
    phases: Phases = field(default_factory=Phases)  # filled in as the sweep runs
    budget: dict[str, Any] | None = None  # resume only: limits that replace the stored ones
    # Called with the result before an embedded Ray shuts down: the CLI prints its
    # summary there, so the user does not wait a second or two for the shutdown.
    on_finish: Callable[[SweepResult], None] | None = None

    def say(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False)


def run_sweep(spec: SweepSpec, options: RunOptions | None = None) -> SweepResult:
    """Run a sweep to the end and return its best trial; see the README for what it records."""
    options = options or RunOptions()
    phases = options.phases
    quiet_driver_output()
    storage = resolve_storage(options.storage)
    # From here on the sweep is the one tuner may write down; the secrets travel apart.
    spec, withheld = spec.without_secrets()
    with phases.phase("preflight"):
        preflight(
            spec, withheld, address=options.address, num_cpus=options.num_cpus,
            tracking_uri=options.tracking_uri,
        )  # fmt: skip
        spec = prepare_init_from(spec, options.tracking_uri, storage)
        start = starting_points(spec, options.tracking_uri, options.say)
    sweep, started_ray = start_sweep(
        spec,
        address=options.address,
        num_cpus=options.num_cpus,
        tracking_uri=options.tracking_uri,
        # The user's file holds the secrets: MLflow gets the sweep without them.
        spec_path=None if withheld else options.spec_path,
        phases=phases,
    )
    plots: EndPlots | None = None
    try:
        experiment = Experiment.new(storage, spec.name)
        with driver_lock(experiment):  # a `tuner resume` meanwhile is refused
            result = _run_tracked(
                with_absolute_paths(spec), options, sweep, experiment, withheld, start=start
            )
        plots = _ended(result, options)
        return result
    finally:
        _shut_down(started_ray, phases, plots)


def resume_sweep(
    sweep_name: str, options: RunOptions | None = None, sweep_file: SweepSpec | None = None
) -> SweepResult:
    """Finish the latest experiment of a sweep from its storage, in its MLflow runs.

    `sweep_file`: the user's sweep file, where the secrets that tuner did not store are.
    """
    options = options or RunOptions()
    quiet_driver_output()
    experiment = latest_experiment(resolve_storage(options.storage), sweep_name)
    with driver_lock(experiment):  # refused while another process drives it
        return _resume(experiment, options, sweep_file)


def _resume(
    experiment: Experiment, options: RunOptions, sweep_file: SweepSpec | None
) -> SweepResult:
    phases = options.phases
    spec = experiment.load_spec()
    if sweep_file is not None and (note := changes_note(spec, sweep_file)) is not None:
        options.say(note)  # before preflight: a trainable renamed since fails there
    if options.budget is not None:
        spec = with_budget(spec, options.budget)
    from_file = sweep_file.without_secrets()[1] if sweep_file is not None else None
    withheld = secrets_back(spec.name, spec.config, from_file)
    with phases.phase("preflight"):
        preflight(
            spec, withheld, address=options.address, num_cpus=options.num_cpus,
            tracking_uri=options.tracking_uri,
        )  # fmt: skip
    plots: EndPlots | None = None
    experiment.check_resumable()
    with phases.phase("ray start"):
        started_ray = start_or_join(
            options.address, options.num_cpus, state_api=needs_state_api(spec)
        )
    try:
        sweep, note = reopen_sweep(
            spec, experiment, options.tracking_uri, extended=options.budget is not None
        )
        if note is not None:
            options.say(note)
        if options.budget is not None:  # a later resume goes on with the new limits
            experiment.save_spec(spec)
        result = _run_tracked(spec, options, sweep, experiment, withheld, start=None)
        plots = _ended(result, options)
        return result
    finally:
        _shut_down(started_ray, phases, plots)


def _ended(result: SweepResult, options: RunOptions) -> EndPlots:
    """The summary said while Ray is up, then the plots begun: drawn while it shuts down."""
    if options.on_finish is not None:
        options.on_finish(result)
    plots = EndPlots(result, options.console)
    plots.start()
    return plots


def _shut_down(started_ray: bool, phases: Phases, plots: EndPlots | None) -> None:
    if started_ray:
        # A Ctrl-C inside it ended the command with status 1; by now it has nothing to stop.
        held = InterruptsHeld("stopping Ray; press Ctrl-C again to leave now", then_raise=False)
        with held, phases.phase("ray shutdown"):
            ray.shutdown()
    if plots is not None:
        plots.wait()


def _run_tracked(
    spec: SweepSpec,
    options: RunOptions,
    sweep: SweepRun,
    experiment: Experiment,
    withheld: dict[str, Any],
    *,
    start: StartingPoints | None,
) -> SweepResult:
    """`start`: where a new sweep's searcher starts; None resumes the saved one."""
    phases = options.phases
    early_stops = EarlyStops.shared(experiment.uri)
    storage = experiment.storage
    writer = TrackingWriter.for_store(sweep.client, sweep.experiment_id, spec.expected_trials())
    dataset = dataset_of(spec)
    sweep.record_dataset(dataset)  # the runs table's Dataset column, on the sweep's row too
    lineage = lineage_of(spec, experiment.uri)
    tracker = TrialTracker(
        writer, sweep.run_id, spec.params, early_stops, storage.uri_of, prices=spec.cost,
        dataset=dataset, lineage=lineage, resources=spec.resources_per_trial,
        objective=(spec.metric, spec.mode), own_logs=not spec.trainable.startswith("builtin:"),
    )  # fmt: skip
    interrupts = InterruptWatch()
    ended = EndedTrials.shared(experiment.uri).start(spec, early_stops)
    progress = ProgressTable(spec, early_stops, options.console, released=ended.counts)
    fail_fast = FailFast.shared(experiment.uri, spec.fail_fast_after)
    budget = BudgetStop.shared(experiment.uri).watch(spec.budget, spec.cost, tracker.cost)
    # What logging the best model imports, once the trials have started theirs: before,
    # on few cores, it slowed their start by as much as it took (tracking.models).
    moments = TrialMoments(phases, at_first_result=lambda: import_model_logging(spec.trainable))
    callbacks = [
        tracker, progress, interrupts, moments, FailFastWatch(fail_fast), CompactFinishedTrials(),
        ended,  # last: Ray saves and restores callbacks' states by their place in this list
    ]  # fmt: skip
    try:
        tags = {TAG_EXPERIMENT_PATH: experiment.uri}
        if os.environ.get(SUBMISSION_ID_ENV):
            tags[TAG_SUBMISSION] = os.environ[SUBMISSION_ID_ENV]
        sweep.set_tags(tags)
        if start is None:
            tracker.continue_runs(
                existing_trial_runs(sweep.client, sweep.experiment_id, sweep.run_id, spec.metric)
            )
            tuner = restore_tuner(spec, experiment, callbacks, withheld, options.say)
        else:
            experiment.save_spec(spec)
            on_cluster = options.address is not None
            tuner = build_tuner(
                spec, experiment, callbacks, early_stops, withheld=withheld,
                on_cluster=on_cluster, start=start,
            )  # fmt: skip
        # Said once the sweep starts: one refused before (bad login, no cluster) stays one line.
        notes = [f"warning: {warning}" for warning in spec.warnings()]
        notes += [note] if (note := fresh_actors_note(spec)) is not None else []
        for line in notes:
            options.say(line)
        live_plots = LivePlots(options.tracking_uri, sweep.experiment_id, sweep.run_id)
        trims = fitting(spec, on_cluster=options.address is not None)
        with restored_signal_handlers(), trims, live_plots, phases.phase("fit"):
            results = tuner.fit()
        # Ray saved its last state: what a resume may trust (finished, failed or stopped).
        sweep.set_tags({TAG_STATE_DIGEST: state_digest(experiment)})
        if interrupts.interrupted and budget.reached is None:
            tracker.end_open_runs("interrupted")
            sweep.record_cost(tracker.cost.total().metrics(spec.cost))
            raise interrupted(spec.name, experiment, interrupts.signal_name)
        # Trials still running when the sweep was stopped (fail fast) ended with it.
        stopped_by = budget.reached or trials_capped(spec)
        terminated = RegretStop.shared(experiment.uri).reached  # stop_when held
        tracker.end_open_runs(
            "fail fast" if fail_fast.tripped else end_reason(stopped_by, terminated)
        )
        # After the runs it closed: each trial's hours end there, and the sums match.
        cost = tracker.cost.total().metrics(spec.cost)
        sweep.record_cost(cost)
        with phases.phase("tracking flush"):
            writer.flush()
        with phases.phase("checkpoints pruned"):
            prune_checkpoints(results, storage, released=ended.checkpoints)
        failed = results.num_errors
        num_trials = len(results) + ended.released  # those let go (ended_trials) too
        if (error := fail_fast.tripped) is not None:
            hint = error_hint(error)
            raise SweepFailed(
                f"sweep {spec.name!r} stopped: its first {spec.fail_fast_after} trials all "
                f"failed with {error}" + (f" -- {hint}" if hint else "")
            )
        winner = best_result(spec, results, early_stops)
        if winner is None and stopped_by is not None:
            raise SweepFailed(
                f"sweep {spec.name!r} stopped by its budget ({stopped_by}) before any trial "
                f"reported {spec.metric!r}"
            )
        if winner is None:
            first_error = next(iter(tracker.errors.values()), None)
            raise SweepFailed(
                f"sweep {spec.name!r}: no trial finished with a value of {spec.metric!r} "
                f"({failed} of {num_trials} trials failed"
                + (f"; first: {first_error})" if first_error else ")")
            )
        best = best_trial(spec, winner, writer, storage)
        sweep.record_best(
            spec.metric,
            best.value,
            best.params,
            best.trial_id,
            best.run_id,
            for_now=stopped_by is not None,
        )
        exported = Exported({}, None)
        if best.run_id is not None and winner.checkpoint is not None:
            with phases.phase("best model export"):
                exported = export_best(spec, sweep, best, winner.checkpoint, phases)
        front = record_front_of(spec, results, early_stops, sweep, writer)
        restarted = len(tracker.restarts)
        end_tags = {
            "tuner.failed_trials": str(failed),
            "tuner.stopped_early": str(len(early_stops)),
            **tracker.restart_tags(),
            # The sweep run's description in MLflow's UI.
            "mlflow.note.content": sweep_note(spec, num_trials, len(early_stops), failed, best),
        }
        end_tags |= stop_tags(stopped_by, terminated)
        end_tags |= schedule_tags(lineage, best.trial_id)
        sweep.finish(RunStatus.FINISHED, end_tags)
        return SweepResult(
            name=spec.name,
            tracking_uri=options.tracking_uri,
            experiment_id=sweep.experiment_id,
            parent_run_id=sweep.run_id,
            experiment_path=experiment.uri,
            num_trials=num_trials,
            num_stopped_early=len(early_stops),
            early_stopping=isinstance(spec.scheduler, AshaScheduler),
            num_failed=failed,
            num_restarted=restarted,
            best=best,
            test_metrics=exported.test_metrics,
            registered=exported.registered,
            cost=cost,
            stopped_by=stopped_by,
            terminated=terminated,
            phases=phases,
            artifact_location=sweep.artifact_location,
            front=front,
        )
    except KeyboardInterrupt as interrupt:
        # A second Ctrl-C breaks out of Tune's graceful stop: the trials' runs must end
        # too, or MLflow shows them RUNNING for good.
        close_interrupted(tracker, writer, sweep)
        raise resumable(interrupt, spec.name, experiment) from None
    except BaseException:
        close_quietly(writer, sweep, RunStatus.FAILED)
        raise
    finally:
        writer.close()
