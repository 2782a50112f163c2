"""The built-in classifier's hyperparameters: names, types, ranges and defaults.

Torch-free so that `tuner validate` can check a sweep's params and config against the
trainer before anything heavy is imported. The trainer itself reads its config through
this model, so a misspelled knob fails in validation, never silently in a trial.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Optimizer = Literal["sgd", "adam", "adamw", "rmsprop"]
Dataset = Literal["digits", "wine", "breast_cancer"]


class ClassifierKnobs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: Dataset = "digits"
    epochs: Annotated[int, Field(gt=0, le=10_000)] = 10
    lr: Annotated[float, Field(gt=0, le=10)] = 1e-3
    optimizer: Optimizer = "adam"
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9  # sgd and rmsprop only
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    hidden: Annotated[int, Field(gt=0, le=65_536)] = 64  # width of every hidden layer
    depth: Annotated[int, Field(ge=1, le=64)] = 2  # number of hidden layers
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    batch_size: Annotated[int, Field(gt=0, le=1_000_000)] = 64
    seed: int = 0  # model init and batch order; the data split has its own fixed seed


KNOBS_BY_TRAINABLE: dict[str, type[BaseModel]] = {"builtin:classifier": ClassifierKnobs}
