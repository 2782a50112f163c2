"""The stock Ray Tune script a user compares tuner with: the built-in trainer's epochs
(`run_epochs`) on a grid of learning rates, 2 trials at a time (one CPU each, finished
trials' workers reused), a report per epoch, no checkpoints and no tracking beyond Ray's
own result files.

    python bench/plain_raytune.py EPOCHS LR,LR,... STORAGE_DIR

It is the script Ray's docs lead to, with Ray's defaults (Ray started by the Tuner, the
dashboard if installed): bench.endtoend times it as a whole command.
"""

from __future__ import annotations

import sys
from typing import Any

from ray import tune


def trainable(config: dict[str, Any]) -> None:
    from tuner.trainer.loop import run_epochs

    for epoch in run_epochs(config, "classification", None):
        tune.report({"val_accuracy": float(epoch.metrics["val_accuracy"])})


def optimize(lrs: list[float], epochs: int, storage: str) -> float:
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"epochs": epochs, "lr": tune.grid_search(lrs)},
        tune_config=tune.TuneConfig(
            metric="val_accuracy", mode="max", max_concurrent_trials=2, reuse_actors=True
        ),
        run_config=tune.RunConfig(storage_path=storage, verbose=0),
    )
    best = tuner.fit().get_best_result().metrics
    assert best is not None, "every trial reported"
    return float(best["val_accuracy"])


if __name__ == "__main__":
    lrs = [float(lr) for lr in sys.argv[2].split(",")]
    print(f"best val_accuracy {optimize(lrs, int(sys.argv[1]), sys.argv[3]):.4f}")
