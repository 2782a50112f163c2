"""A sweep's `budget`: the most it may spend in dollars, GPU-hours, wall time or trials."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, StrictInt, field_validator

from tuner.spec.strict import Strict

_DURATION = re.compile(
    r"(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?"
)
_UNIT_S = (86400, 3600, 60, 1)


def duration_s(text: str) -> float:
    """Seconds in "2h", "90m", "1h30m", "45s" or "1.5d"; ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"{text!r} is not a duration such as 90s, 30m, 2h or 1h30m")
    return sum(
        float(part) * unit for part, unit in zip(match.groups(), _UNIT_S, strict=True) if part
    )


class Budget(Strict):
    """When any limit is reached no new trial starts, the running ones stop after their
    current result, and the sweep ends FINISHED, tagged as stopped by its budget."""

    max_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    max_gpu_hours: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    max_cpu_hours: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    max_wall: str | None = None
    max_trials: Annotated[StrictInt, Field(gt=0)] | None = None

    @field_validator("max_wall")
    @classmethod
    def _a_duration(cls, text: str | None) -> str | None:
        if text is not None and duration_s(text) <= 0:
            raise ValueError(f"must be longer than 0 (got {text!r})")
        return text

    @property
    def max_wall_s(self) -> float | None:
        return None if self.max_wall is None else duration_s(self.max_wall)
