"""Population-based training on Ray's `PopulationBasedTraining`, with its history kept.

Ray's PBT perturbs a number by a factor of 0.8 or 1.2 with no regard for its range; here
every perturbed value is put back inside its mutation's range (and on its steps). Each
exploit is recorded in a `Lineage`: which trial copied which, from which epoch, with
what values, so MLflow can show every trial's hyperparameter schedule and the best
trial's whole schedule (its donors' epochs included) can be printed and replayed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from ray.tune.experiment import Trial
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler

from tuner.spec import CategoricalParam, IntParam
from tuner.spec.pbt import Mutation


@dataclass(frozen=True)
class Segment:
    """From `epoch` on (1-based), a trial trained with `values`."""

    epoch: int
    values: dict[str, Any]


@dataclass(frozen=True)
class Exploit:
    """At `epoch` a trial went on from `donor`'s checkpoint of `donor_epoch`."""

    epoch: int
    donor: str
    donor_epoch: int


class Lineage:
    """Every trial's schedule of mutated values and its exploits, shared by the PBT
    scheduler (which records) and the tracker (which logs).

    Ray pickles the scheduler into the experiment; a lineage pickles with what it
    recorded, and unpickled in a process it becomes (or fills) that process's lineage
    for its key, so a resumed sweep's tracker reads what the restored scheduler knew.
    """

    _shared: ClassVar[dict[str, Lineage]] = {}

    def __init__(self, key: str, mutations: dict[str, Mutation]) -> None:
        self.key = key
        self.mutations = dict(mutations)
        self.schedules: dict[str, list[Segment]] = {}
        self.exploits: dict[str, list[Exploit]] = {}

    @classmethod
    def shared(cls, key: str, mutations: dict[str, Mutation]) -> Lineage:
        if key not in cls._shared:
            cls._shared[key] = cls(key, mutations)
        return cls._shared[key]

    @classmethod
    def _restored(cls, key: str, state: dict[str, Any]) -> Lineage:
        lineage = cls.shared(key, state["mutations"])
        if not lineage.schedules:
            lineage.__dict__.update(state)
        return lineage

    def __reduce__(self) -> tuple[Any, tuple[str, dict[str, Any]]]:
        return (Lineage._restored, (self.key, dict(self.__dict__)))

    def begin(self, trial_id: str, config: dict[str, Any]) -> None:
        self.schedules.setdefault(trial_id, [Segment(1, self.values_in(config))])

    def exploit(self, trial_id: str, donor: str, donor_epoch: int, config: dict[str, Any]) -> None:
        inherited = [s for s in self.schedules.get(donor, []) if s.epoch <= donor_epoch]
        self.schedules[trial_id] = [
            *inherited,
            Segment(donor_epoch + 1, self.values_in(config)),
        ]
        self.exploits.setdefault(trial_id, []).append(Exploit(donor_epoch + 1, donor, donor_epoch))

    def values_in(self, config: dict[str, Any]) -> dict[str, Any]:
        return {name: config[name] for name in self.mutations if name in config}

    def schedule(self, trial_id: str) -> list[Segment]:
        """The values `trial_id`'s weights were trained with, epoch by epoch: its donors'
        up to the checkpoint it copied, its own after; consecutive equal ones merged."""
        merged: list[Segment] = []
        for segment in self.schedules.get(trial_id, []):
            if not merged or merged[-1].values != segment.values:
                merged.append(segment)
        return merged

    def hp_points(self, config: dict[str, Any]) -> dict[str, float]:
        """`hp.<name>` metrics of the values in `config`: a choice of words as its index
        among the mutation's choices (MLflow metrics are numbers), a choice of numbers as
        the number (lr 0.4 of [0.01, 0.4] plotted as 1.0 read as a rate), a bool as 0 or 1."""
        points = {}
        for name, mutation in self.mutations.items():
            value = config.get(name)
            if isinstance(mutation, CategoricalParam) and not _all_numbers(mutation.choices):
                if value in mutation.choices:
                    points[f"hp.{name}"] = float(mutation.choices.index(value))
            elif isinstance(value, int | float):
                points[f"hp.{name}"] = float(value)
        return points


def _all_numbers(choices: list[Any]) -> bool:
    return all(isinstance(c, int | float) and not isinstance(c, bool) for c in choices)


def kept_in_range(value: Any, mutation: Mutation) -> Any:
    """A perturbed value put back inside its mutation's range, on its steps."""
    if isinstance(mutation, CategoricalParam) or not isinstance(value, int | float):
        return value
    clipped = min(max(float(value), mutation.low), mutation.high)
    if mutation.step is not None:
        steps = round((clipped - mutation.low) / mutation.step)
        clipped = min(mutation.low + steps * mutation.step, mutation.high)
    if isinstance(mutation, IntParam):
        return math.floor(clipped + 0.5)
    return clipped


@dataclass(frozen=True)
class LastIteration:
    """A trial's last result, where known: the sweep's stop rule, or a built-in
    trainer's `epochs` (it reports once per epoch). Pickled with the scheduler."""

    stop_at: int | None
    builtin: bool

    def __call__(self, config: dict[str, Any]) -> int | None:
        epochs = config.get("epochs") if self.builtin else None
        known = [int(n) for n in (self.stop_at, epochs) if isinstance(n, int | float)]
        return min(known) if known else None


class RecordedPBT(PopulationBasedTraining):  # type: ignore[misc]
    """Ray's PBT that keeps perturbed values in range and records each trial's lineage."""

    def __init__(
        self,
        lineage: Lineage,
        last_iteration: Callable[[dict[str, Any]], int | None],
        **kwargs: Any,
    ) -> None:
        self.lineage = lineage
        self._last_iteration = last_iteration
        super().__init__(custom_explore_fn=self._in_range, **kwargs)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        # A trial at its last result is not perturbed: a trial copying its checkpoint
        # would have nothing left to train, and one perturbed would end as it is.
        last = self._last_iteration(trial.config)
        if last is not None and result.get(self._time_attr, 0) >= last:
            return str(TrialScheduler.CONTINUE)
        return str(super().on_trial_result(tune_controller, trial, result))

    def _in_range(self, config: dict[str, Any]) -> dict[str, Any]:
        for name, mutation in self.lineage.mutations.items():
            if name in config:
                config[name] = kept_in_range(config[name], mutation)
        return config

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        super().on_trial_add(tune_controller, trial)  # fills mutated keys a trial lacks
        self.lineage.begin(trial.trial_id, trial.config)

    def _exploit(self, tune_controller: Any, trial: Trial, trial_to_clone: Trial) -> None:
        # The donor's checkpoint is the one of its last perturbation point.
        donor_epoch = int(self._trial_state[trial_to_clone].last_train_time)
        super()._exploit(tune_controller, trial, trial_to_clone)
        self.lineage.exploit(trial.trial_id, trial_to_clone.trial_id, donor_epoch, trial.config)
