"""Population-based training in the sweep file: `scheduler: {kind: pbt, ...}`.

PBT (Jaderberg et al., 2017) trains a population; every `perturbation_interval`
iterations the trials in the bottom `quantile_fraction` copy a top trial's checkpoint
(exploit) and perturb its hyperparameters (explore): each of `mutations` is resampled
with `resample_probability`, else a number is multiplied by 0.8 or 1.2 (kept inside its
range) and a choice moves to a neighbour. Ray's `PopulationBasedTraining` runs it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Annotated, Any, Literal, Protocol

from pydantic import Field, model_validator

from tuner.spec.errors import KeyedProblem
from tuner.spec.params import CategoricalParam, FloatParam, GridParam, IntParam, Param
from tuner.spec.strict import Strict


class SweepParts(Protocol):
    """What these rules read of a sweep (tuner.spec.SweepSpec, which imports this)."""

    @property
    def scheduler(self) -> Any: ...
    @property
    def searcher(self) -> Any: ...
    @property
    def params(self) -> Mapping[str, Param]: ...
    @property
    def config(self) -> Mapping[str, Any]: ...
    @property
    def constraints(self) -> Sequence[Any]: ...
    @property
    def is_multi_objective(self) -> bool: ...


# A mutation is a range or a list of choices: a grid axis or a condition means nothing
# to a trial that changes its values while it trains.
Mutation = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


class PbtScheduler(Strict):
    kind: Literal["pbt"]
    # In training iterations (reports; an epoch of a built-in trainer).
    perturbation_interval: Annotated[int, Field(strict=True, gt=0)] = 4
    quantile_fraction: Annotated[float, Field(gt=0, le=0.5)] = 0.25
    resample_probability: Annotated[float, Field(ge=0, le=1)] = 0.25
    # None: the searched params that may change mid-training.
    mutations: Annotated[dict[str, Mutation], Field(min_length=1)] | None = None


# PB2 models the reward's change over the values with a Gaussian process: numbers only.
Range = Annotated[FloatParam | IntParam, Field(discriminator="type")]


class Pb2Scheduler(PbtScheduler):
    """PB2 (Parker-Holder et al., 2020): PBT whose explore step picks the new values with
    a GP bandit (Ray's `PB2`) instead of random perturbation."""

    kind: Literal["pb2"]  # type: ignore[assignment]
    mutations: Annotated[dict[str, Range], Field(min_length=1)] | None = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _no_resampling(self) -> Pb2Scheduler:
        if "resample_probability" in self.model_fields_set:
            raise KeyedProblem(
                "scheduler.resample_probability",
                "pb2 chooses new values with its bandit; resample_probability is pbt's",
            )
        return self


def check_pbt(spec: SweepParts) -> None:
    """What a PBT sweep needs of the rest of the file (the trainer's own knobs are the
    engine's to check: `mutations_of` with the knobs that may change)."""
    if not isinstance(spec.scheduler, PbtScheduler):
        return
    if spec.searcher.kind == "optuna":
        raise KeyedProblem(
            "searcher.kind",
            f"{spec.scheduler.kind} samples its population from params itself (Ray's PBT "
            "takes no search algorithm): use searcher kind random or grid",
        )
    if spec.is_multi_objective or spec.constraints:
        raise KeyedProblem(
            "objectives" if spec.is_multi_objective else "constraints",
            f"{spec.scheduler.kind} ranks trials by one metric: give metric and mode "
            "(and no constraints)",
        )
    if any(param.when is not None for param in spec.params.values()):
        raise KeyedProblem(
            "params",
            f"{spec.scheduler.kind} takes no conditional params (when:): a trial may "
            "change its values",
        )
    for name, mutation in (spec.scheduler.mutations or {}).items():
        key = f"scheduler.mutations.{name}"
        if mutation.when is not None:
            raise KeyedProblem(f"{key}.when", "a mutation has no condition")
        if name in spec.config:
            raise KeyedProblem(
                key,
                f"is fixed under config; search it under params to let {spec.scheduler.kind} "
                "change it",
            )
        searched = spec.params.get(name)
        if searched is not None:
            _within(key, mutation, searched)


def _within(key: str, mutation: Mutation, searched: Param) -> None:
    """A mutation stays inside the range the sweep declared for the param (the span of
    its values, for numbers given as choices or a grid)."""
    if isinstance(mutation, CategoricalParam):
        if not isinstance(searched, CategoricalParam | GridParam):
            raise KeyedProblem(f"{key}.type", f"params declares a {searched.type} range here")
        outside = [choice for choice in mutation.choices if choice not in searched.options]
        if outside:
            raise KeyedProblem(
                f"{key}.choices",
                f"{outside[0]!r} is not among the param's {searched.options_key} "
                f"{searched.options!r}",
            )
        return
    if isinstance(searched, CategoricalParam | GridParam):
        # A population started on a few values may explore the range they span.
        numbers = [
            v for v in searched.options if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        if len(numbers) < len(searched.options) or (
            isinstance(mutation, IntParam) and not all(isinstance(v, int) for v in numbers)
        ):
            raise KeyedProblem(
                f"{key}.type", f"is {mutation.type} but the param's values are not all that"
            )
        low, high = min(numbers), max(numbers)
    elif type(searched) is not type(mutation):
        raise KeyedProblem(f"{key}.type", f"is {mutation.type} but params declares {searched.type}")
    else:
        low, high = searched.low, searched.high
    if mutation.low < low or mutation.high > high:
        raise KeyedProblem(
            key,
            f"[{mutation.low:g}, {mutation.high:g}] leaves the param's range [{low:g}, {high:g}]",
        )


def as_mutation(param: Param) -> Mutation:
    """A searched param as the mutation that keeps it in its declared values."""
    if isinstance(param, GridParam):
        return CategoricalParam(type="categorical", choices=param.values)
    return param.model_copy(update={"when": None})


def mutations_of(spec: SweepParts, changeable: Collection[str] | None) -> dict[str, Mutation]:
    """The sweep's mutations: as given, else its searched params that may change while
    a trial trains (`changeable`: those names; None: all of them, for a trainable of
    the user's own, which reads its config again after a restore).

    Raises KeyedProblem for a mutation of a knob that cannot change mid-training.
    """
    scheduler = spec.scheduler
    assert isinstance(scheduler, PbtScheduler)
    given: Mapping[str, Mutation] | None = scheduler.mutations
    if given is not None:
        if changeable is not None:
            for name in given:
                if name not in changeable:
                    raise KeyedProblem(
                        f"scheduler.mutations.{name}",
                        f"{name!r} cannot change while a trial trains (it shapes the model, "
                        "the data or the run); mutable: " + ", ".join(sorted(changeable)),
                    )
        return dict(given)
    chosen = {
        name: as_mutation(param)
        for name, param in spec.params.items()
        if (changeable is None or name in changeable)
        # PB2's bandit takes ranges of numbers only.
        and not (
            isinstance(scheduler, Pb2Scheduler) and isinstance(param, CategoricalParam | GridParam)
        )
    }
    if not chosen:
        raise KeyedProblem(
            "scheduler.mutations",
            "none of the searched params can change while a trial trains; list the "
            "mutations (mutable: " + ", ".join(sorted(changeable or ())) + ")",
        )
    return chosen
