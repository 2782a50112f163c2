"""The points a sweep tries first: its `enqueue`, then the best configurations of the
sweep its `warm_start` names, read back from MLflow before Ray starts (a wrong name
fails in a second, with one line)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import optuna
from mlflow import MlflowClient

from tuner.engine.study_storage import prepare_study_storage
from tuner.search.distributions import optuna_space
from tuner.search.warm import StartingPoints
from tuner.spec import SpecError, SweepSpec
from tuner.spec.first_trials import as_taken, point_problems
from tuner.tracking.best import SweepNotFound, latest_sweep_run
from tuner.tracking.study import SweepStudy, sweep_of_run

LEARNED_STATES = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def starting_points(
    spec: SweepSpec, tracking_uri: str, say: Callable[[str], None]
) -> StartingPoints:
    prepare_study_storage(spec, say)  # an earlier run's trials are history too
    points: list[dict[str, Any]] = [as_taken(point, spec.params) for point in spec.enqueue]
    warm = spec.warm_start
    if warm is None:
        return StartingPoints(points)
    source = _read_source(warm.source, tracking_uri)
    dropped: dict[str, set[int]] = {}  # param -> the source trials it was left out of
    if warm.top is not None:
        room = spec.num_samples - len(points)
        ranked = _ranked(source)[: min(warm.top, room)]
        best = [point for trial in ranked if (point := _fitting(trial, spec, dropped))]
        points += best
        values = ", ".join(f"{trial.value:.4g}" for trial in ranked)
        say(
            f"warm start: the {len(best)} best configurations of sweep {warm.source!r} "
            f"({source.spec.metric} {values}) run first"
            + (f" (num_samples leaves room for {room})" if warm.top > room else "")
        )
    history: list[optuna.trial.FrozenTrial] = []
    if warm.learn:
        _same_objective(spec, source)
        history = _history(source, spec, dropped)
        say(f"warm start: Optuna learns from {len(history)} trials of sweep {warm.source!r}")
    for name, trials in sorted(dropped.items()):
        say(
            f"warm start: {name} dropped from {len(trials)} trials of sweep {warm.source!r}: "
            "not in this sweep's space, or not a value it can take"
        )
    return StartingPoints(points, history)


def _read_source(name: str, tracking_uri: str) -> SweepStudy:
    client = MlflowClient(tracking_uri)
    try:
        experiment_id, parent = latest_sweep_run(client, name, tracking_uri, finished=True)
        return sweep_of_run(client, experiment_id, parent)
    except SweepNotFound as exc:
        raise SpecError(None, "warm_start.from", str(exc)) from None


def _same_objective(spec: SweepSpec, source: SweepStudy) -> None:
    theirs = (source.spec.metric, source.spec.mode)
    if theirs != (spec.metric, spec.mode):
        raise SpecError(
            None,
            "warm_start.learn",
            f"sweep {source.spec.name!r} optimized {theirs[0]} ({theirs[1]}), this sweep "
            f"{spec.metric} ({spec.mode}): its values would mislead the searcher",
        )


def _ranked(source: SweepStudy) -> list[optuna.trial.FrozenTrial]:
    """The source's finished trials, best first, one per configuration."""
    finished = [
        trial
        for trial in source.study.trials
        if trial.state == optuna.trial.TrialState.COMPLETE
        and trial.value is not None
        and not math.isnan(trial.value)
    ]
    finished.sort(key=lambda trial: float(trial.value or 0.0), reverse=source.spec.mode == "max")
    unique: list[optuna.trial.FrozenTrial] = []
    for trial in finished:
        if all(trial.params != seen.params for seen in unique):
            unique.append(trial)
    return unique


def _fitting(
    trial: optuna.trial.FrozenTrial, spec: SweepSpec, dropped: dict[str, set[int]]
) -> dict[str, Any]:
    """The trial's params that this sweep can take as they are; the others go in `dropped`."""
    problems = point_problems(trial.params, spec.params)
    for name in problems:
        dropped.setdefault(name, set()).add(trial.number)
    return {name: value for name, value in trial.params.items() if name not in problems}


def _history(
    source: SweepStudy, spec: SweepSpec, dropped: dict[str, set[int]]
) -> list[optuna.trial.FrozenTrial]:
    """The source's completed and pruned trials, in this sweep's distributions."""
    distributions = optuna_space(spec)
    history = []
    for trial in source.study.trials:
        if trial.state not in LEARNED_STATES:
            continue
        params = _fitting(trial, spec, dropped)
        history.append(
            optuna.trial.create_trial(
                state=trial.state,
                value=trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None,
                params=params,
                distributions={name: distributions[name] for name in params},
                intermediate_values=trial.intermediate_values,
                user_attrs={"warm_start_from": source.spec.name, **trial.user_attrs},
            )
        )
    return history
