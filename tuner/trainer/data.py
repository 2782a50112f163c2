"""Data sets for the built-in trainer, split once with a fixed seed and standardized."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from sklearn import datasets
from sklearn.model_selection import train_test_split

# The split never depends on a trial's seed: every trial must see the same validation set,
# and the test split must stay unseen by the search.
SPLIT_SEED = 20240601
VAL_FRACTION = 0.2
TEST_FRACTION = 0.2

_LOADERS = {
    "digits": datasets.load_digits,
    "wine": datasets.load_wine,
    "breast_cancer": datasets.load_breast_cancer,
}


@dataclass(frozen=True)
class Split:
    features: torch.Tensor
    labels: torch.Tensor


@dataclass(frozen=True)
class Splits:
    train: Split
    val: Split
    test: Split
    num_features: int
    num_classes: int


@lru_cache(maxsize=8)
def load_splits(name: str) -> Splits:
    """Train/validation/test splits; cached so a reused Ray actor loads a data set once."""
    bunch = _LOADERS[name]()
    x = np.asarray(bunch.data, dtype=np.float32)
    y = np.asarray(bunch.target, dtype=np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest,
        y_rest,
        test_size=VAL_FRACTION / (1 - TEST_FRACTION),
        random_state=SPLIT_SEED,
        stratify=y_rest,
    )
    # Standardization is fitted on the training split only: no leak from val/test.
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0

    def to_split(features: np.ndarray, labels: np.ndarray) -> Split:
        return Split(torch.from_numpy((features - mean) / std), torch.from_numpy(labels))

    return Splits(
        train=to_split(x_train, y_train),
        val=to_split(x_val, y_val),
        test=to_split(x_test, y_test),
        num_features=x.shape[1],
        num_classes=int(y.max()) + 1,
    )
