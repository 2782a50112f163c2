"""What a trial takes: its workers, each worker's CPUs and GPUs, and where they go."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from tuner.spec.errors import KeyedProblem
from tuner.spec.searchers import Count
from tuner.spec.strict import Strict

# Ray counts resources in units of 1/10,000: a smaller fraction is 0, never scheduled.
RESOURCE_UNIT = 0.0001


class Resources(Strict):
    """What each of a trial's workers takes; `workers` > 1 makes a data-parallel trial."""

    # One process by default: today's single-process trial, with its speed.
    workers: Count = 1
    cpu: Annotated[float, Field(gt=0)] = 1
    # Fractional GPUs pack small trials on one device; they do not isolate memory.
    gpu: Annotated[float, Field(ge=0)] = 0
    # Where a multi-worker trial's workers go: Ray's PACK (as few nodes as fit: fast
    # collectives) or SPREAD (one per node where possible: fewer lost to one node).
    placement: Literal["pack", "spread"] = "pack"

    @field_validator("cpu", "gpu")
    @classmethod
    def _in_ray_units(cls, amount: float) -> float:
        if amount and (amount < RESOURCE_UNIT or abs(round(amount, 4) - amount) > 1e-12):
            raise ValueError(f"Ray counts resources in steps of {RESOURCE_UNIT}; got {amount!r}")
        return amount

    @field_validator("gpu")
    @classmethod
    def _whole_gpus_above_one(cls, gpu: float) -> float:
        if gpu > 1 and not float(gpu).is_integer():
            raise ValueError(f"more than one GPU must be a whole number (got {gpu})")
        return gpu

    @model_validator(mode="after")
    def _whole_gpus_per_worker(self) -> Resources:
        # NCCL gives each rank a device of its own: workers cannot share a GPU.
        if self.workers > 1 and not float(self.gpu).is_integer():
            raise KeyedProblem(
                "resources_per_trial.gpu",
                f"with {self.workers} workers each takes whole GPUs (got {self.gpu:g}); "
                "use gpu: 0 or a whole number",
            )
        return self

    def described(self) -> str:
        """A trial's workers in words, as `tuner status` shows them: "2 workers x 1 CPU",
        "4 workers x 8 CPUs, 1 GPU (spread)"."""
        each = f"{self.cpu:g} CPU{'' if self.cpu == 1 else 's'}"
        if self.gpu:
            each += f", {self.gpu:g} GPU{'' if self.gpu == 1 else 's'}"
        workers = f"{self.workers} worker{'' if self.workers == 1 else 's'}"
        return f"{workers} x {each}" + (" (spread)" if self.placement == "spread" else "")

    @property
    def distributed(self) -> bool:
        """Whether a trial runs as several data-parallel workers (Ray Train)."""
        return self.workers > 1
