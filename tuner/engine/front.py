"""Which trials a sweep's results make best: the feasible best for one objective, the
Pareto front for several. A trial's values are its final reported ones."""

from __future__ import annotations

import math
from collections.abc import Container
from typing import Any

from ray import tune

from tuner.search.pareto import Point, pareto_front
from tuner.spec import SweepSpec
from tuner.spec.objectives import feasible
from tuner.tracking.pareto_runs import FrontTrial, record_front
from tuner.tracking.results import as_number
from tuner.tracking.runs import SweepRun
from tuner.tracking.writer import TrackingWriter


def objective_point(spec: SweepSpec, metrics: dict[str, Any]) -> Point | None:
    """The result's objectives, signed so that higher is better; None if one is missing,
    NaN or infinite (such a result is never best)."""
    point = []
    for objective in spec.objective_list:
        value = as_number(metrics.get(objective.metric))
        if value is None or not math.isfinite(value):
            return None
        point.append(value if objective.mode == "max" else -value)
    return tuple(point)


def _candidates(spec: SweepSpec, results: tune.ResultGrid) -> list[tuple[tune.Result, Point]]:
    """Results that did not fail, meet the constraints and have every objective."""
    found = []
    for index in range(len(results)):
        result = results[index]
        metrics = result.metrics or {}
        point = objective_point(spec, metrics)
        if result.error is None and point is not None and feasible(spec.constraints, metrics):
            found.append((result, point))
    return found


def pareto_results(
    spec: SweepSpec, results: tune.ResultGrid, stopped_early: Container[str]
) -> list[tune.Result]:
    """The non-dominated feasible results, best on the first objective first. Trials
    ASHA stopped are left out (a one-epoch model is cheap, not good) unless no trial
    trained to its end."""
    candidates = _candidates(spec, results)
    trained = [
        (result, point)
        for result, point in candidates
        if str((result.metrics or {}).get("trial_id")) not in stopped_early
    ]
    pool = trained or candidates
    front = [pool[i] for i in pareto_front([point for _, point in pool])]
    front.sort(key=lambda pair: pair[1][0], reverse=True)
    return [result for result, _ in front]


def best_result(
    spec: SweepSpec, results: tune.ResultGrid, stopped_early: Container[str] = ()
) -> tune.Result | None:
    """The trial with the best final value of the (first) objective among feasible trials
    that did not fail; with several objectives, the front's best on the first one.

    A trial's score is its final reported value, as ASHA and Optuna see it. A failed
    trial's last value is not a result, and NaN or infinity never wins.
    """
    if spec.is_multi_objective:
        front = pareto_results(spec, results, stopped_early)
        return front[0] if front else None
    candidates = _candidates(spec, results)
    return max(candidates, key=lambda pair: pair[1][0])[0] if candidates else None


def front_trials(
    spec: SweepSpec,
    front: list[tune.Result],
    writer: TrackingWriter,
    stopped_early: Container[str] = (),
) -> list[FrontTrial]:
    trials = []
    for result in front:
        metrics, config = result.metrics or {}, result.config or {}
        trial_id = str(metrics["trial_id"])
        trials.append(
            FrontTrial(
                trial_id=trial_id,
                run_id=writer.run_id(trial_id),
                values={o.metric: float(metrics[o.metric]) for o in spec.objective_list},
                params={name: config[name] for name in spec.params if name in config},
                stopped_early=trial_id in stopped_early,
            )
        )
    return trials


def record_front_of(
    spec: SweepSpec,
    results: tune.ResultGrid,
    stopped_early: Container[str],
    sweep: SweepRun,
    writer: TrackingWriter,
) -> list[FrontTrial]:
    """The Pareto front of a multi-objective sweep, tagged in MLflow; [] for one objective."""
    if not spec.is_multi_objective:
        return []
    front = front_trials(spec, pareto_results(spec, results, stopped_early), writer, stopped_early)
    objectives: list[tuple[str, str]] = [(o.metric, o.mode) for o in spec.objective_list]
    record_front(sweep.client, sweep.run_id, objectives, front)
    return front
