"""The base of every sweep-file model: unknown keys are errors, values are frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    # A typo must never be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)
