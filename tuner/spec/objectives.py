"""Several objectives and constraints: what a sweep optimizes and what a result must meet.

`objectives: [{metric: val_accuracy, mode: max}, {metric: num_params, mode: min}]`
replaces `metric`/`mode`; the first objective is the sweep's primary one (its progress
table, its exported "best" model). `constraints: [{metric: inference_ms, max: 2.0}]`
makes a trial whose final result breaks one infeasible: never best, never on the front.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from tuner.spec.errors import KeyedProblem
from tuner.spec.strict import Strict

Mode = Literal["max", "min"]
Limit = Annotated[float, Field(allow_inf_nan=False)]
# Optuna's multi-objective samplers and a front a user can read: a handful at most.
MAX_OBJECTIVES = 4


class Objective(Strict):
    metric: Annotated[str, Field(min_length=1)]
    mode: Mode


class Constraint(Strict):
    metric: Annotated[str, Field(min_length=1)]
    max: Limit | None = None
    min: Limit | None = None

    @model_validator(mode="after")
    def _bounded(self) -> Constraint:
        if self.max is None and self.min is None:
            raise ValueError("needs max, min or both")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g})")
        return self

    def violation(self, value: float | None) -> float:
        """How far `value` breaks the constraint: <= 0 when it holds (Optuna's rule).
        A missing or non-finite value breaks it by 1: it cannot be shown to hold."""
        if value is None or not math.isfinite(value):
            return 1.0
        excess = [value - self.max] if self.max is not None else []
        excess += [self.min - value] if self.min is not None else []
        return max(excess)

    def describe(self) -> str:
        bounds = [f">= {self.min:g}"] if self.min is not None else []
        bounds += [f"<= {self.max:g}"] if self.max is not None else []
        return f"{self.metric} {' and '.join(bounds)}"


def objectives_in(raw: Any) -> Any:
    """The sweep file with `metric`/`mode` filled in from its first objective, so that
    everything single-objective reads the primary one; both forms at once is an error."""
    if not isinstance(raw, dict) or raw.get("objectives") is None:
        return raw
    given = [key for key in ("metric", "mode") if key in raw]
    if given:
        raise KeyedProblem(
            given[0], "give objectives or metric and mode, not both (objectives lists them)"
        )
    objectives = raw["objectives"]
    if objectives == []:
        raise KeyedProblem("objectives", "lists none: give at least one, or metric and mode")
    if isinstance(objectives, list) and objectives and isinstance(objectives[0], dict):
        first = objectives[0]
        return {**raw, "metric": first.get("metric"), "mode": first.get("mode")}
    return raw


def check_objectives(objectives: Sequence[Objective]) -> None:
    if len(objectives) > MAX_OBJECTIVES:
        raise KeyedProblem("objectives", f"lists {len(objectives)}; at most {MAX_OBJECTIVES}")
    seen: set[str] = set()
    for index, objective in enumerate(objectives):
        if objective.metric in seen:
            raise KeyedProblem(
                f"objectives[{index}].metric", f"{objective.metric!r} is listed twice"
            )
        seen.add(objective.metric)


def violations(constraints: Sequence[Constraint], metrics: Mapping[str, Any]) -> list[float]:
    """Each constraint's violation for a trial's final metrics (<= 0: it holds)."""
    return [
        constraint.violation(_number(metrics.get(constraint.metric))) for constraint in constraints
    ]


def feasible(constraints: Sequence[Constraint], metrics: Mapping[str, Any]) -> bool:
    return all(violation <= 0 for violation in violations(constraints, metrics))


def _number(value: Any) -> float | None:
    """Reported numbers, numpy scalars and 0-d tensors alike; anything else is None."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
