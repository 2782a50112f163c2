"""Configurations a sweep tries first: `enqueue` (written in the file) and `warm_start`
(the best of an earlier sweep, read from MLflow when the sweep starts).

A point names some of the sweep's params; the searcher samples the rest. Each point is
one of `num_samples` (with grid axes, Ray's rule: one sample, repeated over the grid).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, StrictBool, model_validator

from tuner.spec.conditions import holds, same_value
from tuner.spec.errors import KeyedProblem
from tuner.spec.params import CategoricalParam, FloatParam, GridParam, IntParam, Param, Scalar
from tuner.spec.strict import Strict

Point = dict[str, Scalar]


class WarmStart(Strict):
    """`warm_start: {from: SWEEP, top: 5, learn: true}`."""

    # `from` is a Python keyword: the model calls it source.
    source: Annotated[str, Field(alias="from", min_length=1)]
    top: Annotated[int, Field(gt=0, strict=True)] | None = None
    learn: StrictBool = False

    @model_validator(mode="after")
    def _does_something(self) -> WarmStart:
        if self.top is None and not self.learn:
            raise KeyedProblem(
                "warm_start", "says neither top: N (try its best first) nor learn: true"
            )
        return self


def value_problem(param: Param, value: object) -> str | None:
    """Why `value` is not one the param can take, or None."""
    if isinstance(param, CategoricalParam | GridParam):
        if any(same_value(value, option) for option in param.options):
            return None
        shown = ", ".join(str(option) for option in param.options)
        return f"{value!r} is not among its {param.options_key} ({shown})"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{value!r} is not a number"
    if isinstance(param, IntParam) and not float(value).is_integer():
        return f"{value!r} is not a whole number"
    if not math.isfinite(value) or not param.low <= value <= param.high:
        return f"{value!r} is outside [{param.low:g}, {param.high:g}]"
    assert isinstance(param, FloatParam | IntParam)
    if param.step is not None:
        steps = (value - param.low) / param.step
        if abs(steps - round(steps)) > 1e-9 * max(1.0, abs(steps)):
            return f"{value!r} is not low + a multiple of step ({param.step:g})"
    return None


def as_taken(point: Mapping[str, Scalar], params: Mapping[str, Param]) -> dict[str, Scalar]:
    """A checked point with each value as its param gives it to a trial: `3.0` written
    for an int param is 3, `1.0` for the choice `1` is that choice (a trial of the point
    once got the float, and `range(config["i"])` failed)."""
    taken = dict(point)
    for name, value in point.items():
        param = params[name]
        if isinstance(param, IntParam):
            taken[name] = int(value)
        elif isinstance(param, CategoricalParam | GridParam):
            taken[name] = next(o for o in param.options if same_value(value, o))
    return taken


def point_problems(point: Mapping[str, Any], params: Mapping[str, Param]) -> dict[str, str]:
    """{param: problem} for each value of a point that the sweep cannot try as given."""
    problems: dict[str, str] = {}
    for name, value in point.items():
        param = params.get(name)
        if param is None:
            problems[name] = f"names no param (params: {', '.join(params)})"
        elif (problem := value_problem(param, value)) is not None:
            problems[name] = problem
        elif (
            param.when is not None
            and set(param.when) <= point.keys()  # else the searcher samples the parents
            and not holds(param, point)
        ):
            condition = " and ".join(
                f"{parent} in [{', '.join(map(str, values))}]"
                for parent, values in param.when.items()
            )
            problems[name] = (
                f"its condition ({condition}) does not hold in this point; leave it out"
            )
    return problems


def check_enqueue(points: list[Point], params: Mapping[str, Param], *, grid_axes: set[str]) -> None:
    for index, point in enumerate(points):
        if not point:
            raise KeyedProblem(f"enqueue[{index}]", "is empty: name at least one param")
        for name in point:
            if name in grid_axes:
                raise KeyedProblem(
                    f"enqueue[{index}].{name}",
                    "is a grid axis, which tries every value already; leave it out",
                )
        problems = point_problems(point, params)
        if problems:
            name, problem = next(iter(problems.items()))
            raise KeyedProblem(f"enqueue[{index}].{name}", problem)
