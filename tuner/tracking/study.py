"""A sweep read back from MLflow as an Optuna study, whatever searcher ran it: its trials'
params, final and per-epoch values and states, so that Optuna's plots and importance
evaluators work on any sweep, finished or running, made by any version of tuner."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import optuna
from mlflow import MlflowClient
from mlflow.entities import Run

from tuner.search.distributions import optuna_space
from tuner.spec import SweepSpec
from tuner.spec.objectives import feasible
from tuner.tracking.best import latest_sweep_run
from tuner.tracking.histories import metric_histories
from tuner.tracking.logged_params import sweep_file, typed
from tuner.tracking.runs import child_runs
from tuner.tracking.tags import TAG_KILLED, TAG_STOPPED_EARLY, TAG_TRIAL_ID

# A user attr: how a trial Optuna must count as failed ended, in tuner's words (it
# finished with the metric NaN, it was cut off by a Ctrl-C), for the report's counts.
ENDED = "ended"
STATES = {
    "FINISHED": optuna.trial.TrialState.COMPLETE,
    "FAILED": optuna.trial.TrialState.FAIL,
}


@dataclass(frozen=True)
class SweepStudy:
    spec: SweepSpec
    parent: Run
    study: optuna.Study
    running: int  # trials still running: not in the study yet
    # Several objectives: the finished feasible trials with every objective's value.
    front: optuna.Study | None = None


def read_sweep(name: str, tracking_uri: str) -> SweepStudy:
    """The latest run of sweep `name` (finished or not) as an in-memory Optuna study."""
    client = MlflowClient(tracking_uri)
    experiment_id, parent = latest_sweep_run(client, name, tracking_uri, finished=False)
    return sweep_of_run(client, experiment_id, parent)


def sweep_of_run(client: MlflowClient, experiment_id: str, parent: Run) -> SweepStudy:
    """The sweep whose parent run is `parent`, as an in-memory Optuna study."""
    spec = sweep_file(client, parent)
    runs = child_runs(client, experiment_id, parent.info.run_id)
    by_run = metric_histories(client, [run.info.run_id for run in runs], spec.metric)
    histories = [by_run[run.info.run_id] for run in runs]
    direction = (
        optuna.study.StudyDirection.MAXIMIZE
        if spec.mode == "max"
        else optuna.study.StudyDirection.MINIMIZE
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=spec.name, direction=direction)
    distributions = optuna_space(spec)
    running = 0
    for run, history in sorted(zip(runs, histories, strict=True), key=_started):
        trial = _frozen_trial(run, history, spec, distributions)
        if trial is None:
            running += 1
        else:
            study.add_trial(trial)
    front = _objectives_study(spec, runs, distributions) if spec.is_multi_objective else None
    return SweepStudy(spec, parent, study, running, front)


def _objectives_study(
    spec: SweepSpec,
    runs: list[Run],
    distributions: dict[str, optuna.distributions.BaseDistribution],
) -> optuna.Study:
    """The sweep's finished, feasible trials with all their objectives: the study
    Optuna's Pareto-front plot reads."""
    objectives = spec.objective_list
    study = optuna.create_study(
        study_name=spec.name,
        directions=["maximize" if o.mode == "max" else "minimize" for o in objectives],
    )
    for run in runs:
        metrics = run.data.metrics
        if run.info.status != "FINISHED" or any(o.metric not in metrics for o in objectives):
            continue
        if not feasible(spec.constraints, metrics):
            continue
        if not all(math.isfinite(as_logged(metrics[o.metric])) for o in objectives):
            continue  # a NaN or infinite objective is on no front, as when the sweep ended
        params = {
            name: typed(run.data.params[name], distribution)
            for name, distribution in distributions.items()
            if name in run.data.params
        }
        study.add_trial(
            optuna.trial.create_trial(
                values=[metrics[o.metric] for o in objectives],
                params=params,
                distributions={name: distributions[name] for name in params},
                user_attrs={"trial_id": run.data.tags.get(TAG_TRIAL_ID, "")},
            )
        )
    return study


def _started(pair: tuple[Run, dict[int, float]]) -> int:
    return int(pair[0].info.start_time or 0)


def _frozen_trial(
    run: Run,
    history: dict[int, float],
    spec: SweepSpec,
    distributions: dict[str, optuna.distributions.BaseDistribution],
) -> optuna.trial.FrozenTrial | None:
    """One trial's run as Optuna would have recorded it; None while it runs."""
    status = run.info.status
    attrs: dict[str, Any] = {
        "trial_id": run.data.tags.get(TAG_TRIAL_ID, ""),
        "run_id": run.info.run_id,
    }
    if status == "KILLED" and TAG_STOPPED_EARLY in run.data.tags:
        state = optuna.trial.TrialState.PRUNED  # stopped by ASHA, as Optuna's pruners do
    elif status == "KILLED":
        state = optuna.trial.TrialState.FAIL  # cut off by an interrupt: no final value
        attrs[ENDED] = f"cut off ({run.data.tags.get(TAG_KILLED) or 'interrupted'})"
    elif status in STATES:
        state = STATES[status]
    else:
        return None
    params = {
        name: typed(run.data.params[name], distribution)
        for name, distribution in distributions.items()
        if name in run.data.params
    }
    value = run.data.metrics.get(spec.metric)
    value = None if value is None else as_logged(value)
    if state == optuna.trial.TrialState.COMPLETE and value is None:
        state = optuna.trial.TrialState.FAIL  # finished without ever reporting the metric
        attrs[ENDED] = f"finished without {spec.metric}"
    elif state == optuna.trial.TrialState.COMPLETE and not math.isfinite(value or 0.0):
        # A diverged trial: Optuna refuses a NaN value, and an infinite one breaks its
        # parallel coordinates and fANOVA; tuner never makes either best. It counts as
        # failed in the plots; the report still says it finished with NaN or inf.
        state = optuna.trial.TrialState.FAIL
        attrs[ENDED] = f"finished with {spec.metric} {'NaN' if math.isnan(value or 0.0) else value}"
    trial = optuna.trial.create_trial(
        state=state,
        value=value if state == optuna.trial.TrialState.COMPLETE else None,
        params=params,
        distributions={name: distributions[name] for name in params},
        # A NaN or infinite point cannot be drawn; one at MLflow's float max would squash
        # every other curve flat.
        intermediate_values={step: v for step, v in history.items() if math.isfinite(as_logged(v))},
        user_attrs=attrs,
    )
    return _with_times(trial, run)


def as_logged(value: float) -> float:
    """A metric as the trial reported it: MLflow's SQL stores keep an infinity as the
    largest float (1.8e308), which no real metric reaches."""
    return math.copysign(math.inf, value) if abs(value) == sys.float_info.max else value


def _with_times(trial: optuna.trial.FrozenTrial, run: Run) -> optuna.trial.FrozenTrial:
    """The run's own start and end, for plots against wall time."""
    if run.info.start_time:
        trial.datetime_start = datetime.fromtimestamp(run.info.start_time / 1000)
    if run.info.end_time:
        trial.datetime_complete = datetime.fromtimestamp(run.info.end_time / 1000)
    return trial
