"""The sweep file's schema: searchers, schedulers, resources and the sweep itself."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from tuner.defaults import CHECKPOINT_EVERY_EPOCHS, CHECKPOINT_MIN_INTERVAL_S, FAIL_FAST_AFTER
from tuner.spec.errors import KeyedProblem, SpecError
from tuner.spec.params import CategoricalParam, FloatParam, GridParam, IntParam, Param
from tuner.spec.strict import Strict

# --- searchers and schedulers ----------------------------------------------------------


class GridSearcher(Strict):
    kind: Literal["grid"]


class RandomSearcher(Strict):
    kind: Literal["random"]
    seed: int | None = None


OptunaSampler = Literal["tpe", "gp", "cmaes", "random"]


class OptunaSearcher(Strict):
    kind: Literal["optuna"]
    sampler: OptunaSampler = "tpe"
    seed: int | None = None


Searcher = Annotated[GridSearcher | RandomSearcher | OptunaSearcher, Field(discriminator="kind")]


class FifoScheduler(Strict):
    kind: Literal["fifo"]


class AshaScheduler(Strict):
    kind: Literal["asha"]
    max_t: Annotated[int, Field(gt=0)]
    grace_period: Annotated[int, Field(gt=0)] = 1
    reduction_factor: Annotated[float, Field(gt=1)] = 3

    @field_validator("grace_period")
    @classmethod
    def _grace_within_max_t(cls, grace: int, info: ValidationInfo) -> int:
        max_t = info.data.get("max_t")
        if max_t is not None and grace > max_t:
            raise ValueError(f"must be <= max_t ({grace} > {max_t})")
        return grace


Scheduler = Annotated[FifoScheduler | AshaScheduler, Field(discriminator="kind")]


class Resources(Strict):
    cpu: Annotated[float, Field(gt=0)] = 1
    # Fractional GPUs pack small trials on one device; they do not isolate memory.
    gpu: Annotated[float, Field(ge=0)] = 0

    @field_validator("gpu")
    @classmethod
    def _whole_gpus_above_one(cls, gpu: float) -> float:
        if gpu > 1 and not float(gpu).is_integer():
            raise ValueError(f"more than one GPU must be a whole number (got {gpu})")
        return gpu


class CheckpointPolicy(Strict):
    """How often a built-in trainer writes a checkpoint: both bounds must hold.

    A checkpoint is written after an epoch when `every_epochs` epochs have passed and at
    least `min_interval_s` seconds since the last one; always at an ASHA rung (a stopped
    trial's last checkpoint is where it stopped), at max_t and at a trial's last epoch.
    A restarted trial redoes at most `min_interval_s` of work plus the epoch it was in.
    """

    every_epochs: Annotated[int, Field(gt=0)] = CHECKPOINT_EVERY_EPOCHS
    # A checkpoint of a small model costs almost an epoch (7.5 ms against ~9 ms on 2
    # cores, bench/checkpoints.py); 30 s bounds what a preemption loses to 30 s of work.
    min_interval_s: Annotated[float, Field(ge=0)] = CHECKPOINT_MIN_INTERVAL_S


# --- the sweep -------------------------------------------------------------------------

TRAINABLE_PATTERN = r"^(builtin:[A-Za-z_][A-Za-z0-9_]*|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$"


class SweepSpec(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)]
    trainable: Annotated[str, Field(pattern=TRAINABLE_PATTERN)]
    metric: Annotated[str, Field(min_length=1)]
    mode: Literal["max", "min"]
    num_samples: Annotated[int, Field(gt=0)] = 1
    searcher: Searcher = RandomSearcher(kind="random")
    scheduler: Scheduler = FifoScheduler(kind="fifo")
    max_concurrent_trials: Annotated[int, Field(gt=0)] | None = None
    resources_per_trial: Resources = Resources()
    checkpoint: CheckpointPolicy = CheckpointPolicy()
    # When a trial ends: {training_iteration: N}, {<metric>: threshold} (reached in
    # `mode`'s direction) or {<other reported key>: value} (reached when >=, Ray's rule).
    stop: dict[str, float] = Field(default_factory=dict)
    # The sweep stops when its first N trials to end all failed with the same error: a
    # bug in the trainable (a `ray.train` call, a wrong key) fails every trial alike.
    fail_fast_after: Annotated[int, Field(gt=0)] | None = FAIL_FAST_AFTER
    params: Annotated[dict[str, Param], Field(min_length=1)]
    config: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        for key, param in self.params.items():
            if isinstance(param, GridParam) and isinstance(self.searcher, OptunaSearcher):
                raise KeyedProblem(
                    f"params.{key}.type",
                    "grid axes need searcher kind grid or random; "
                    "use type: categorical with the optuna searcher",
                )
            if isinstance(self.searcher, GridSearcher) and isinstance(param, FloatParam | IntParam):
                raise KeyedProblem(
                    f"params.{key}.type",
                    f"the grid searcher needs finite values; {param.type} ranges "
                    "need searcher kind random or optuna",
                )
            if key in self.config:
                raise KeyedProblem(f"config.{key}", "is also a searched param; keep one")
        iterations = self.stop.get("training_iteration")
        if iterations is not None and (iterations < 1 or not float(iterations).is_integer()):
            raise KeyedProblem(
                "stop.training_iteration", f"must be a whole number >= 1 (got {iterations:g})"
            )
        return self

    def warnings(self) -> list[str]:
        """What may be wrong with a valid sweep: one line each, printed, never fatal."""
        found = []
        if (
            isinstance(self.scheduler, FifoScheduler)
            and not self.stop
            and not self.trainable.startswith("builtin:")
        ):
            # Ray's examples train in `while True` loops and end trials with a stop rule:
            # without one such a sweep never ends, and nothing says why.
            found.append(
                "scheduler fifo and no `stop`: each trial runs until the trainable returns; "
                "if it loops, add stop: {training_iteration: N} or {METRIC: threshold}"
            )
        return found

    @property
    def searcher_label(self) -> str:
        """e.g. "grid", "random", "optuna:tpe": how tags and summaries name the searcher."""
        if isinstance(self.searcher, OptunaSearcher):
            return f"optuna:{self.searcher.sampler}"
        return self.searcher.kind

    def grid_size(self) -> int:
        """Number of points on the exhaustive axes (1 when there are none)."""
        size = 1
        for param in self.params.values():
            if isinstance(param, GridParam) or (
                isinstance(self.searcher, GridSearcher) and isinstance(param, CategoricalParam)
            ):
                size *= len(param.options)
        return size

    def expected_trials(self) -> int:
        """Trials Ray Tune will run: num_samples repeats of the grid (Ray's semantics)."""
        if isinstance(self.searcher, OptunaSearcher):
            return self.num_samples
        return self.num_samples * self.grid_size()

    def with_num_samples(self, num_samples: int) -> SweepSpec:
        if num_samples <= 0:
            raise SpecError(None, "num_samples", f"must be > 0 (got {num_samples})")
        return self.model_copy(update={"num_samples": num_samples})
