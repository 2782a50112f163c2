"""The plain Optuna script a user compares tuner with: the built-in trainer's epochs
(`run_epochs`), one configuration after another in one process, a learning rate each,
no checkpoints and no tracking.

    python bench/plain_optuna.py EPOCHS LR,LR,...

It imports only Optuna and the trainer, as the user's 20 lines would: bench.endtoend
times it as a whole command, bench.checkpoints calls `optimize` in its own process.
"""

from __future__ import annotations

import sys

import optuna

from tuner.trainer.loop import run_epochs


def optimize(lrs: list[float], epochs: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for lr in lrs:
        study.enqueue_trial({"lr": lr})

    def objective(trial: optuna.Trial) -> float:
        config = {"epochs": epochs, "lr": trial.suggest_float("lr", 1e-5, 1.0, log=True)}
        accuracy = 0.0
        for epoch in run_epochs(config, "classification", None):
            accuracy = float(epoch.metrics["val_accuracy"])
            trial.report(accuracy, epoch.number)
        return accuracy

    study.optimize(objective, n_trials=len(lrs))
    return study


if __name__ == "__main__":
    study = optimize([float(lr) for lr in sys.argv[2].split(",")], int(sys.argv[1]))
    print(f"best val_accuracy {study.best_value:.4f}")
