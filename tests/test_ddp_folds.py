"""Cross-validation in a multi-worker trial: with `cv_folds` each fold is a model of its
own, and under DDP each worker steps every fold in the same order. Two gloo workers
(spawned processes, no Ray) train the same folds, to the same metrics and weights, as
one process on the same global batch."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tests.gloo_pair import gloo_pair
from tuner.trainer.distributed import Shard
from tuner.trainer.loop import run_epochs

pytestmark = pytest.mark.slow

# Dropout and augmentation off (their defaults): they draw per worker. batch_size 50
# leaves a short last batch, split unevenly between the workers.
CONFIG: dict[str, Any] = {
    "epochs": 2,
    "batch_size": 50,
    "optimizer": "sgd",
    "lr": 0.05,
    "seed": 3,
    "cv_folds": 2,
}
# DDP sums the two halves' gradients in another order than one backward pass does.
TOLERANCE = 1e-5


def _worker(rank: int, said: Any) -> None:
    """One of two workers: rank 0 says its epochs' metrics and its folds' last weights."""
    epochs = list(run_epochs(CONFIG, "classification", None, shard=Shard(rank, 2)))
    if rank == 0:
        # As numpy: a tensor would cross by a file descriptor of this process's.
        folds = [
            {name: tensor.numpy() for name, tensor in fold["model"].items()}
            for fold in epochs[-1].state().folds or []
        ]
        said.put(([epoch.metrics for epoch in epochs], folds))


def test_two_workers_train_every_fold_as_one_process_does() -> None:
    (metrics, folds), exits = gloo_pair(_worker)
    assert exits == [0, 0]
    alone = list(run_epochs(CONFIG, "classification", None))
    assert len(metrics) == len(alone) == CONFIG["epochs"]
    for shared, single in zip(metrics, alone, strict=True):
        # The folds' mean, and their spread, over the whole validation split of each fold.
        for key in ("train_loss", "val_loss", "val_accuracy", "val_accuracy_std"):
            assert shared[key] == pytest.approx(single.metrics[key], abs=TOLERANCE), key
    expected = alone[-1].state().folds
    assert folds is not None and expected is not None and len(folds) == len(expected) == 2
    for got, want in zip(folds, expected, strict=True):
        for name, tensor in want["model"].items():
            torch.testing.assert_close(torch.from_numpy(got[name]), tensor, atol=TOLERANCE, rtol=0)
