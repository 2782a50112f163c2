"""The scheduler a `pbt` or `pb2` sweep file asks for: tuner's recorded PBT or PB2
(tuner.search.pbt, tuner.search.pb2), each with the sweep's mutations and stop."""

from __future__ import annotations

from typing import Any

from tuner.search.pbt import LastIteration, Lineage, RecordedPBT
from tuner.search.space import tune_domain
from tuner.spec import CategoricalParam, FloatParam, IntParam, SweepSpec
from tuner.spec.pbt import Mutation, Pb2Scheduler, PbtScheduler


def build_pbt(spec: SweepSpec, lineage: Lineage, time_attr: str) -> RecordedPBT:
    scheduler = spec.scheduler
    assert isinstance(scheduler, PbtScheduler)
    stop_at = spec.stop.get("training_iteration")
    last_iteration = LastIteration(
        None if stop_at is None else int(stop_at), spec.trainable.startswith("builtin:")
    )

    def domain(mutation: Mutation) -> Any:
        # A list shifts to a neighbouring choice; a domain is scaled or resampled.
        if isinstance(mutation, CategoricalParam):
            return list(mutation.choices)
        assert isinstance(mutation, FloatParam | IntParam)
        return tune_domain(mutation)

    if isinstance(scheduler, Pb2Scheduler):
        # Imported only for PB2: Ray's PB2 imports scikit-learn (its GP), a second of
        # every other sweep's start.
        from tuner.search.pb2 import RecordedPB2

        return RecordedPB2(
            lineage,
            last_iteration,
            time_attr=time_attr,
            perturbation_interval=scheduler.perturbation_interval,
            quantile_fraction=scheduler.quantile_fraction,
            hyperparam_bounds={
                name: [mutation.low, mutation.high]
                for name, mutation in lineage.mutations.items()
                if isinstance(mutation, FloatParam | IntParam)
            },
        )
    return RecordedPBT(
        lineage,
        last_iteration,
        time_attr=time_attr,
        perturbation_interval=scheduler.perturbation_interval,
        quantile_fraction=scheduler.quantile_fraction,
        resample_probability=scheduler.resample_probability,
        hyperparam_mutations={
            name: domain(mutation) for name, mutation in lineage.mutations.items()
        },
    )
