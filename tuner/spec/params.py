"""Searched parameters: float and int ranges, categorical choices, exhaustive grid axes.

Any of them may carry `when: {OTHER_PARAM: [values...]}`: it is sampled only for trials
whose OTHER_PARAM took one of those values (`tuner.spec.conditions` checks the rules)."""

from __future__ import annotations

import math
import sys
from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from tuner.spec.strict import Strict

Scalar = str | int | float | bool


def _not_bool(value: object) -> object:
    """YAML's true/false are not the numbers 1 and 0 here: `high: true` is a mistake."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


# Ray, Optuna and MLflow take bounds as 64-bit numbers; NaN or infinity samples nothing.
Bound = Annotated[float, BeforeValidator(_not_bool), Field(allow_inf_nan=False)]
IntBound = Annotated[int, BeforeValidator(_not_bool), Field(ge=-(2**63), le=2**63 - 1)]


# `when: {optimizer: [sgd]}`: every named param must have taken one of its listed values.
Condition = Annotated[dict[str, Annotated[list[Scalar], Field(min_length=1)]], Field(min_length=1)]


class SearchedParam(Strict):
    when: Condition | None = None


def _step_fits(step: float | None, info: ValidationInfo) -> float | None:
    """A quantized range (Ray's quniform/qrandint, Optuna's step) that every searcher
    samples alike: its ends on the grid of steps, and not on a log scale (Optuna has no
    quantized log distribution)."""
    low, high = info.data.get("low"), info.data.get("high")
    if step is None or low is None or high is None:
        return step
    if info.data.get("log"):
        raise ValueError("step and log: true together are not supported")
    steps = (high - low) / step
    if abs(steps - round(steps)) > 1e-9 * max(1.0, abs(steps)):
        raise ValueError(f"high - low ({high - low:g}) is not a multiple of step ({step:g})")
    return step


class FloatParam(SearchedParam):
    type: Literal["float"]
    low: Bound
    high: Bound
    log: bool = False
    step: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None

    _step_fits = field_validator("step")(_step_fits)

    @field_validator("high")
    @classmethod
    def _high_above_low(cls, high: float, info: ValidationInfo) -> float:
        low = info.data.get("low")
        if low is not None and high <= low:
            raise ValueError(f"must be greater than low ({low} >= {high})")
        return high

    @field_validator("log")
    @classmethod
    def _log_needs_positive_low(cls, log: bool, info: ValidationInfo) -> bool:
        low = info.data.get("low")
        if log and low is not None and low <= 0:
            raise ValueError(f"log scale needs low > 0 (low is {low})")
        return log

    @model_validator(mode="after")
    def _width_is_finite(self) -> FloatParam:
        # Sampling uniformly draws low + u * (high - low): numpy and Optuna raise
        # OverflowError in the driver, after Ray started, when that width is infinite.
        # A log scale samples between the logs, which are always finite.
        if not self.log and not math.isfinite(self.high - self.low):
            raise ValueError(
                f"high - low is more than the largest number ({sys.float_info.max:.4g}); "
                "narrow the range or use log: true",
            )
        return self


class IntParam(SearchedParam):
    """Integer range, both ends inclusive."""

    type: Literal["int"]
    low: IntBound
    high: IntBound
    log: bool = False
    step: Annotated[int, BeforeValidator(_not_bool), Field(gt=0)] | None = None

    _step_fits = field_validator("step")(_step_fits)

    _high_above_low = field_validator("high")(FloatParam._high_above_low.__func__)  # type: ignore[attr-defined]
    _log_needs_positive_low = field_validator("log")(
        FloatParam._log_needs_positive_low.__func__  # type: ignore[attr-defined]
    )


def _listed_once(options: list[Scalar]) -> list[Scalar]:
    """A repeated choice is drawn twice as often by a random search and confuses Optuna
    (it maps each value to its first place); a repeated grid value runs its trials twice.
    Both are slips of the pen, so they are refused, not quietly taken."""
    seen: set[tuple[type, str]] = set()
    for option in options:
        key = (type(option), repr(option))  # 1 and true differ; so do 1 and 1.0
        if key in seen:
            raise ValueError(f"{option!r} is listed more than once: list each value once")
        seen.add(key)
    return options


class CategoricalParam(SearchedParam):
    type: Literal["categorical"]
    choices: Annotated[list[Scalar], Field(min_length=1)]

    options_key: ClassVar[str] = "choices"
    _choices_once = field_validator("choices")(_listed_once)

    @property
    def options(self) -> list[Scalar]:
        return self.choices


class GridParam(SearchedParam):
    """An exhaustive axis: every value is tried (grid and random searchers only)."""

    type: Literal["grid"]
    values: Annotated[list[Scalar], Field(min_length=1)]

    options_key: ClassVar[str] = "values"
    _values_once = field_validator("values")(_listed_once)

    @property
    def options(self) -> list[Scalar]:
        return self.values


Param = Annotated[FloatParam | IntParam | CategoricalParam | GridParam, Field(discriminator="type")]
