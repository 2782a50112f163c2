"""The sweep file's searchers (what to try) and schedulers (when to stop a trial)."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, StrictInt, ValidationInfo, field_validator, model_validator

from tuner.spec.errors import KeyedProblem
from tuner.spec.pbt import Pb2Scheduler, PbtScheduler
from tuner.spec.secrets import storage_url_problem
from tuner.spec.strict import Strict

# A bool is not a count: YAML's `max_t: true` is a mistake, not 1.
Count = Annotated[StrictInt, Field(gt=0)]
# NumPy's and Optuna's samplers take 32-bit seeds.
Seed = Annotated[StrictInt, Field(ge=0, le=2**32 - 1)]
# The most ASHA rungs: a factor just above 1 makes millions (and gigabytes of them).
MAX_RUNGS = 100


class GridSearcher(Strict):
    kind: Literal["grid"]


class RandomSearcher(Strict):
    kind: Literal["random"]
    seed: Seed | None = None


OptunaSampler = Literal["tpe", "gp", "cmaes", "random", "nsga2", "nsga3"]
# TPE's good set is its best 10% of trials, at most 25: from 250 on, the same best 25
# whatever the window (tuner/search/bounded_tpe.py, where the sampler lives).
MIN_TPE_HISTORY = 250
# Optuna's CMA-ES optimizes one objective and takes no constraints.
SINGLE_OBJECTIVE_SAMPLERS = frozenset({"cmaes"})


class OptunaSearcher(Strict):
    kind: Literal["optuna"]
    sampler: OptunaSampler = "tpe"
    seed: Seed | None = None
    # A database URL (sqlite:///optuna.db, postgresql://...) that keeps the study, named
    # after the sweep, for optuna-dashboard and later runs; None keeps it in memory.
    storage: Annotated[str, Field(min_length=1)] | None = None
    # TPE models the best 25 trials and the latest `history` finished ones, so that its
    # time per suggestion stops growing with the study; None models every trial
    # (Optuna's own TPE). An explicit choice: it changes what TPE learns from.
    history: Annotated[StrictInt, Field(ge=MIN_TPE_HISTORY)] | None = None

    @model_validator(mode="after")
    def _history_is_tpe(self) -> OptunaSearcher:
        if self.history is not None and self.sampler != "tpe":
            raise KeyedProblem(
                "searcher.history",
                f"bounds TPE's history only; sampler {self.sampler} reads no window",
            )
        return self

    @field_validator("storage")
    @classmethod
    def _storage_url(cls, storage: str | None) -> str | None:
        if storage is not None and (problem := storage_url_problem(storage)) is not None:
            raise ValueError(problem)
        return storage


Searcher = Annotated[GridSearcher | RandomSearcher | OptunaSearcher, Field(discriminator="kind")]


class FifoScheduler(Strict):
    kind: Literal["fifo"]


class AshaScheduler(Strict):
    kind: Literal["asha"]
    max_t: Count
    grace_period: Count = 1
    reduction_factor: Annotated[float, Field(gt=1)] = 3

    @field_validator("grace_period")
    @classmethod
    def _grace_within_max_t(cls, grace: int, info: ValidationInfo) -> int:
        max_t = info.data.get("max_t")
        if max_t is not None and grace > max_t:
            raise ValueError(f"must be <= max_t ({grace} > {max_t})")
        return grace

    @model_validator(mode="after")
    def _few_rungs(self) -> AshaScheduler:
        span = self.max_t / self.grace_period
        rungs = math.floor(math.log(span) / math.log(self.reduction_factor)) + 1
        if rungs > MAX_RUNGS:
            least = span ** (1 / (MAX_RUNGS - 1))
            raise KeyedProblem(
                "scheduler.reduction_factor",
                f"{self.reduction_factor!r} makes {rungs:,} rungs between grace_period "
                f"{self.grace_period} and max_t {self.max_t}; at most {MAX_RUNGS} "
                f"(a factor of at least {math.ceil(least * 1000) / 1000:g})",
            )
        return self


Scheduler = Annotated[
    FifoScheduler | AshaScheduler | PbtScheduler | Pb2Scheduler, Field(discriminator="kind")
]
