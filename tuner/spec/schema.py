"""The sweep file's schema: searchers, schedulers, resources and the sweep itself."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeGuard

import yaml
from pydantic import BeforeValidator, Field, model_validator

from tuner.defaults import CHECKPOINT_EVERY_EPOCHS, CHECKPOINT_MIN_INTERVAL_S, FAIL_FAST_AFTER
from tuner.spec.budget import Budget
from tuner.spec.conditions import check_conditions, count_up_to, grid_points, is_conditional
from tuner.spec.errors import KeyedProblem, SpecError
from tuner.spec.first_trials import Point, WarmStart, check_enqueue
from tuner.spec.names import RESERVED_RESULT_KEYS, logged_name_problem, trainable_reference
from tuner.spec.objectives import Constraint, Objective, check_objectives, objectives_in
from tuner.spec.params import Bound, CategoricalParam, FloatParam, GridParam, IntParam, Param
from tuner.spec.pbt import check_pbt
from tuner.spec.resources import Resources
from tuner.spec.searchers import (
    SINGLE_OBJECTIVE_SAMPLERS,
    Count,
    FifoScheduler,
    GridSearcher,
    OptunaSearcher,
    RandomSearcher,
    Scheduler,
    Searcher,
)
from tuner.spec.secrets import looks_secret, malformed_reference, withhold
from tuner.spec.stop_when import StopWhen, check_stop_when
from tuner.spec.strict import Strict

# The most trials a sweep may ask for: Ray Tune holds every trial in the driver.
MAX_TRIALS = 100_000


class CheckpointPolicy(Strict):
    """How often a built-in trainer writes a checkpoint: both bounds must hold.

    A checkpoint is written after an epoch when `every_epochs` epochs have passed and at
    least `min_interval_s` seconds since the last one; always at an ASHA rung (a stopped
    trial's last checkpoint is where it stopped), at max_t and at a trial's last epoch.
    A restarted trial redoes at most `min_interval_s` of work plus the epoch it was in.
    """

    every_epochs: Count = CHECKPOINT_EVERY_EPOCHS
    # A checkpoint of a small model costs almost an epoch (7.5 ms against ~9 ms on 2
    # cores, bench/checkpoints.py); 30 s bounds what a preemption loses to 30 s of work.
    min_interval_s: Annotated[float, Field(ge=0)] = CHECKPOINT_MIN_INTERVAL_S


class CostPrices(Strict):
    """What a resource-hour costs: turns the trials' held resources into dollars."""

    usd_per_gpu_hour: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    usd_per_cpu_hour: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None


# --- the sweep -------------------------------------------------------------------------


class SweepSpec(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)]
    trainable: Annotated[str, BeforeValidator(trainable_reference)]
    metric: Annotated[str, Field(min_length=1)]
    mode: Literal["max", "min"]
    num_samples: Count = 1
    searcher: Searcher = RandomSearcher(kind="random")
    scheduler: Scheduler = FifoScheduler(kind="fifo")
    max_concurrent_trials: Count | None = None
    resources_per_trial: Resources = Resources()
    checkpoint: CheckpointPolicy = CheckpointPolicy()
    # When a trial ends: {training_iteration: N}, {<metric>: threshold} (reached in
    # `mode`'s direction) or {<other reported key>: value} (reached when >=, Ray's rule).
    stop: dict[str, Bound] = Field(default_factory=dict)  # NaN never fires: a loop ran on
    # The sweep stops when its first N trials to end all failed with the same error: a
    # bug in the trainable (a `ray.train` call, a wrong key) fails every trial alike.
    fail_fast_after: Count | None = FAIL_FAST_AFTER
    params: Annotated[dict[str, Param], Field(min_length=1)]
    config: dict[str, Any] = Field(default_factory=dict)
    # Several objectives instead of metric/mode; metric/mode then name the first.
    objectives: Annotated[list[Objective], Field(min_length=1)] | None = None
    constraints: list[Constraint] = Field(default_factory=list)
    cost: CostPrices | None = None
    budget: Budget | None = None
    # Config key patterns that hold secrets (`*_dsn`), besides the names tuner knows.
    secret_keys: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    # The Model Registry's model the best trial's model becomes a version of (@best alias).
    # `register` in the file; pydantic's models have a `register` attribute already.
    register_as: Annotated[
        str | None,
        Field(alias="register", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100),
    ] = None
    # Configurations to try first, each one of num_samples; unnamed params are sampled.
    enqueue: list[Point] = Field(default_factory=list)
    warm_start: WarmStart | None = None
    stop_when: StopWhen | None = None  # end the sweep when little is left to gain

    @model_validator(mode="before")
    @classmethod
    def _primary_objective(cls, raw: Any) -> Any:
        return objectives_in(raw)

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        self._names_fit()
        self._objectives_fit()
        if self.budget is not None and self.budget.max_usd is not None and self.cost is None:
            raise KeyedProblem(
                "budget.max_usd", "needs prices to count dollars: add cost: {usd_per_...}"
            )
        check_conditions(
            self.params, grid_axes_only_on_grid=isinstance(self.searcher, RandomSearcher)
        )
        self._trials_fit(self.num_samples)
        self._first_trials_fit()
        check_pbt(self)
        check_stop_when(self)
        if self.register_as is not None and not self.trainable.startswith("builtin:"):
            raise KeyedProblem(
                "register",
                "needs a built-in trainer: tuner logs an MLflow model for those only (your "
                "trainable's checkpoint is logged under the best run's checkpoint/)",
            )
        for key, value in self.config.items():
            if (reference := malformed_reference(value)) is not None:
                raise KeyedProblem(
                    f"config.{key}", f"{reference} is not an ${{env:NAME}} reference"
                )
        for key, param in self.params.items():
            if looks_secret(key, self.secret_keys):
                raise KeyedProblem(
                    f"params.{key}",
                    "its name says it holds a secret, and searched values are written "
                    "everywhere: put it under config (or rename it)",
                )
            if "/" in key and isinstance(self.searcher, OptunaSearcher):
                raise KeyedProblem(  # Ray's OptunaSearch unflattens what it suggests
                    f"params.{key}",
                    "the optuna searcher reads '/' in a name as nesting: the trial would get "
                    f"{key.split('/')[0]}: {{...}}, not {key}; use '.', '_' or '-' instead",
                )
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

    def _objectives_fit(self) -> None:
        if self.objectives is not None:
            check_objectives(self.objectives)
        sampler = getattr(self.searcher, "sampler", None)
        if sampler in SINGLE_OBJECTIVE_SAMPLERS and (self.is_multi_objective or self.constraints):
            what = "several objectives" if self.is_multi_objective else "constraints"
            raise KeyedProblem(
                "searcher.sampler",
                f"{sampler} takes neither several objectives nor constraints ({what} given); "
                "use tpe, gp, nsga2, nsga3 or random",
            )
        if getattr(self.searcher, "history", None) is not None and self.is_multi_objective:
            # Multi-objective TPE's good set is 10% of every trial, without a cap: a
            # window would change it.
            raise KeyedProblem("searcher.history", "bounds single-objective TPE only")

    @property
    def objective_list(self) -> list[Objective]:
        """What the sweep optimizes: its objectives, or its one metric and mode."""
        return list(self.objectives or [Objective(metric=self.metric, mode=self.mode)])

    @property
    def is_multi_objective(self) -> bool:
        return len(self.objective_list) > 1

    def _first_trials_fit(self) -> None:
        """enqueue and warm_start, where the searcher can take them."""
        if isinstance(self.searcher, GridSearcher):
            for key, given in (("enqueue", self.enqueue), ("warm_start", self.warm_start)):
                if given:
                    raise KeyedProblem(
                        key,
                        "the grid searcher tries every point already; use kind random or optuna",
                    )
        warm = self.warm_start
        if warm is not None and warm.learn and not isinstance(self.searcher, OptunaSearcher):
            raise KeyedProblem(
                "warm_start.learn", "needs searcher kind optuna: random search learns nothing"
            )
        if len(self.enqueue) > self.num_samples:
            raise KeyedProblem(
                "enqueue",
                f"lists {len(self.enqueue)} points but num_samples is {self.num_samples}; "
                "each point is one of the samples",
            )
        axes = {name for name, param in self.params.items() if self.is_grid_axis(param)}
        check_enqueue(self.enqueue, self.params, grid_axes=axes)

    def _names_fit(self) -> None:
        """Names MLflow and Ray will take, checked before any trial runs."""
        metrics = [("metric" if self.objectives is None else "objectives[0].metric", self.metric)]
        metrics += [(f"constraints[{i}].metric", c.metric) for i, c in enumerate(self.constraints)]
        metrics += [
            (f"objectives[{i}].metric", o.metric) for i, o in enumerate(self.objectives or [])
        ]
        for key, metric in metrics:
            if metric in RESERVED_RESULT_KEYS:
                raise KeyedProblem(
                    key,
                    f"{metric!r} is a key Ray Tune or tuner fills in, not a metric the "
                    "trainable reports; name the metric it reports",
                )
        # Each name as tuner logs it: the sweep's run gets `best_<metric>` and the best
        # trial's `best.<param>`, a PBT trial's run `hp.<mutation>` at every epoch.
        named = [("metric", self.metric, f"best_{self.metric}")]
        named += [
            (f"objectives[{i}].metric", o.metric, o.metric)
            for i, o in enumerate(self.objectives or [])
        ]
        named += [
            (f"constraints[{i}].metric", c.metric, c.metric) for i, c in enumerate(self.constraints)
        ]
        named += [(f"params.{name}", name, f"best.{name}") for name in self.params]
        named += [(f"config.{key}", key, f"config.{key}") for key in self.config]
        mutations = getattr(self.scheduler, "mutations", None) or {}
        named += [(f"scheduler.mutations.{name}", name, f"hp.{name}") for name in mutations]
        for where, name, logged_as in named:
            if (problem := logged_name_problem(name, logged_as)) is not None:
                raise KeyedProblem(where, problem)

    def _trials_fit(self, num_samples: int) -> None:
        grid = self.grid_size()
        trials = num_samples if isinstance(self.searcher, OptunaSearcher) else num_samples * grid
        if trials > MAX_TRIALS:
            shape = f"{grid:,} grid points x num_samples {num_samples:,}" if grid > 1 else ""
            raise KeyedProblem(
                "params" if grid > 1 else "num_samples",
                f"the sweep would run {trials:,} trials{f' ({shape})' if shape else ''}; "
                f"at most {MAX_TRIALS:,}",
            )

    @property
    def max_trials(self) -> int | None:
        """The budget's max_trials, if it sets one."""
        return self.budget.max_trials if self.budget is not None else None

    def without_secrets(self) -> tuple[SweepSpec, dict[str, Any]]:
        """(this sweep as tuner may write it, the config entries it withheld)."""
        shown, withheld = withhold(self.config, self.secret_keys)
        return self.model_copy(update={"config": shown}), withheld

    def as_yaml(self) -> str:
        """The sweep file as tuner stores it: keys the user set, defaults left out."""
        # With objectives, metric and mode are read from them, and may not be given too.
        derived = {"metric", "mode"} if self.objectives is not None else set()
        text: str = yaml.safe_dump(
            self.model_dump(mode="json", exclude_defaults=True, by_alias=True, exclude=derived),
            sort_keys=False,
        )
        return text

    def warnings(self) -> list[str]:
        """What may be wrong with a valid sweep: one line each, printed, never fatal."""
        found = []
        own_code = not self.trainable.startswith("builtin:")
        if isinstance(self.scheduler, FifoScheduler) and not self.stop and own_code:
            # Ray's examples train in `while True` loops and end trials with a stop rule:
            # without one such a sweep never ends, and nothing says why.
            found.append(
                "scheduler fifo and no `stop`: each trial runs until the trainable returns; "
                "if it loops, add stop: {training_iteration: N} or {METRIC: threshold}"
            )
        if (
            self.scheduler.kind in ("pbt", "pb2")
            and own_code
            and "training_iteration" not in self.stop
        ):
            # A built-in trainer's last epoch is its `epochs`; your code's is unknown, so a
            # trial could copy another's checkpoint at its last result and end on its weights.
            found.append(
                f"scheduler {self.scheduler.kind} and no stop.training_iteration: a trial of your "
                "trainable may copy another's checkpoint at its last epoch and end with those "
                "weights under its own scores; add stop: {training_iteration: N}, N its epochs"
            )
        if self.scheduler.kind in ("pbt", "pb2") and self.max_concurrent_trials is not None:
            found.append(
                f"max_concurrent_trials is no cap under {self.scheduler.kind}: all "
                "num_samples trials are made at the start and take turns on what "
                "resources_per_trial lets fit"
            )
        return found

    @property
    def searcher_label(self) -> str:
        """e.g. "grid", "random", "optuna:tpe": how tags and summaries name the searcher."""
        if isinstance(self.searcher, OptunaSearcher):
            return f"optuna:{self.searcher.sampler}"
        return self.searcher.kind

    def is_grid_axis(self, param: Param) -> TypeGuard[CategoricalParam | GridParam]:
        """Whether the searcher tries every one of the param's values."""
        return isinstance(param, GridParam) or (
            isinstance(self.searcher, GridSearcher) and isinstance(param, CategoricalParam)
        )

    def grid_size(self) -> int:
        """Number of points on the exhaustive axes (1 when there are none); with
        conditions, only the combinations whose conditions hold (counted to one past
        MAX_TRIALS at most: enough to refuse the sweep)."""
        if is_conditional(self.params):
            return count_up_to(grid_points(self.params, self.is_grid_axis), MAX_TRIALS)
        size = 1
        for param in self.params.values():
            if self.is_grid_axis(param):
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
        try:
            self._trials_fit(num_samples)
        except KeyedProblem as exc:
            raise SpecError(None, exc.key, exc.problem) from None
        return self.model_copy(update={"num_samples": num_samples})
