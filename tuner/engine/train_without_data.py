"""Ray Train's `TorchTrainer` without the Ray Data actor a tuner trial never uses.

Every Train run's controller starts a `DatasetManager` actor, Ray Data's source of the
workers' dataset shards, whether or not the trainer was given any datasets. tuner
gives none (each worker loads its split, or adopts the sweep's shared one), so the
actor is one more Python process per multi-worker trial start, and per PBT exploit and
restart, that imports Ray and Ray Data (3 to 4 s of CPU on 2 cores) and is never asked
anything. A trainer given datasets keeps it. A worker's `ray.train.get_dataset_shard`
fails either way without datasets, Ray's own message saying so.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache  # one class per process: each trial's restart builds a trainer again
def torch_trainer_class() -> type[Any]:
    """TorchTrainer, less the datasets callback when it has no datasets to serve."""
    from ray.train.torch import TorchTrainer
    from ray.train.v2._internal.callbacks.datasets import DatasetsCallback

    class TorchTrainerWithoutData(TorchTrainer):  # type: ignore[misc]
        def _create_default_callbacks(self) -> list[Any]:
            callbacks: list[Any] = super()._create_default_callbacks()  # type: ignore[misc]
            if self.datasets:
                return callbacks
            return [c for c in callbacks if not isinstance(c, DatasetsCallback)]

    return TorchTrainerWithoutData
