"""The benchmark workload: a small PyTorch MLP on digits, the same work for every system.

No checkpoints and no early stopping: every system trains every configuration for
every epoch, so their wall times differ only by their own overhead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tuner.trainer.data import load_splits
from tuner.trainer.knobs import ClassifierKnobs
from tuner.trainer.loop import predict, score, to_tensors, train_epoch
from tuner.trainer.losses import build_loss
from tuner.trainer.models import build_model
from tuner.trainer.optim import build_optimizer

OnEpoch = Callable[[int, float], None]
CPU = torch.device("cpu")


def learning_rates(n: int) -> list[float]:
    """N fixed configurations: log-spaced learning rates in [1e-4, 1e-1]."""
    if n == 1:
        return [1e-2]
    return [float(10 ** (-4 + 3 * i / (n - 1))) for i in range(n)]


def run_epochs(config: dict[str, Any], on_epoch: OnEpoch) -> float:
    """Train one configuration for config['epochs'] epochs; the last validation accuracy."""
    torch.set_num_threads(1)  # one slot, one core: the same for every system
    knobs = ClassifierKnobs(
        lr=config["lr"], epochs=config["epochs"], hidden=config.get("hidden", 128), batch_size=32
    )
    splits = load_splits(knobs, "classification")
    train, val = to_tensors(splits.train), to_tensors(splits.val)
    torch.manual_seed(0)
    model = build_model(splits.feature_shape, splits.num_classes, knobs)
    optimizer = build_optimizer(model.parameters(), knobs)
    loss_fn = build_loss(knobs)
    accuracy = 0.0
    for epoch in range(1, knobs.epochs + 1):
        generator = torch.Generator().manual_seed(epoch)
        train_epoch(model, optimizer, loss_fn, train, knobs, generator, CPU)
        accuracy = score(predict(model, val[0], CPU), val[1], loss_fn, splits, "val")[
            "val_accuracy"
        ]
        on_epoch(epoch, accuracy)
    return accuracy


def ray_trainable(config: dict[str, Any]) -> None:
    """The workload under Ray Tune (tuner runs it as a user trainable, stock Tune directly)."""
    from ray import tune

    run_epochs(config, lambda epoch, acc: tune.report({"epoch": epoch, "val_accuracy": acc}))


def no_op(config: dict[str, Any]) -> None:
    """A trial that does no work: what is left is the system's own per-trial cost."""
    from ray import tune

    tune.report({"epoch": 1, "score": float(config["x"])})
