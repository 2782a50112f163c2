"""The built-in trainers a sweep names as `builtin:NAME`: where each lives, its knobs, its task.

Import-light on purpose (pydantic only): `tuner validate` checks a sweep against a
built-in's knobs without importing torch; the function itself is imported when a sweep runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuner.trainer.knobs import ClassifierKnobs, RegressorKnobs, TrainerKnobs


@dataclass(frozen=True)
class Builtin:
    function: str  # "module:function", imported only when a sweep runs (it needs torch)
    knobs: type[TrainerKnobs]
    task: str
    # What it reports every epoch: a sweep's metric must be one of them.
    metrics: tuple[str, ...]
    # What each Ray Train worker of a multi-worker trial runs ("module:function").
    worker_function: str = ""


BUILTINS: dict[str, Builtin] = {
    "builtin:classifier": Builtin(
        "tuner.trainer.classifier:train_classifier",
        ClassifierKnobs,
        "classification",
        (
            "val_accuracy",
            "val_loss",
            "train_loss",
            "lr",
            "epoch_time_s",
            "num_params",
            "inference_ms",
        ),
        "tuner.trainer.classifier:train_classifier_worker",
    ),
    "builtin:regressor": Builtin(
        "tuner.trainer.regressor:train_regressor",
        RegressorKnobs,
        "regression",
        (
            "val_rmse",
            "val_r2",
            "val_loss",
            "train_loss",
            "lr",
            "epoch_time_s",
            "num_params",
            "inference_ms",
        ),
        "tuner.trainer.regressor:train_regressor_worker",
    ),
}
