"""Splitting the built-in trainers' data: train/validation/test, or cross-validation folds.

Numpy only, and scikit-learn for cross-validation folds. The split has its own fixed
seed: every trial sees the same validation set (or the same folds), and the test split,
the same with folds or without, stays unseen by the search.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from tuner.trainer.classes import ClassName
from tuner.trainer.data_files import Arrays
from tuner.trainer.shuffle_split import train_test_split

if TYPE_CHECKING:
    from sklearn.model_selection import KFold, StratifiedKFold

# scikit-learn is imported where folds are made, not with this module: a sweep without
# folds never imports it (~1 s a process; the train/validation/test split is
# tuner.trainer.shuffle_split, scikit-learn's steps in numpy).

Task = Literal["classification", "regression"]

SPLIT_SEED = 20240601
VAL_FRACTION = 0.2
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Splits:
    train: Arrays
    val: Arrays
    test: Arrays
    feature_shape: tuple[int, ...]  # one sample: (F,), (T, F) or (C, H, W)
    num_classes: int  # 0 for regression
    target_mean: float = 0.0  # regression targets are standardized; metrics undo it
    target_std: float = 1.0
    # The training split's per-feature mean and std that standardized every split: new
    # samples are scored after the same (x - mean) / std.
    feature_mean: np.ndarray | None = None
    feature_std: np.ndarray | None = None
    # The label value of each class index 0..K-1 (sorted); empty for regression.
    classes: tuple[ClassName, ...] = ()

    def standardize(self, features: np.ndarray) -> np.ndarray:
        """New raw samples as the model saw its training data."""
        assert self.feature_mean is not None and self.feature_std is not None
        standardized: np.ndarray = (features - self.feature_mean) / self.feature_std
        return standardized.astype(np.float32)

    @property
    def is_image(self) -> bool:
        return len(self.feature_shape) == 3


def _holdout(arrays: Arrays, task: Task) -> tuple[np.ndarray, np.ndarray]:
    """The rows the search may see, and the test rows it never does (fixed seed)."""
    stratify = arrays.labels if task == "classification" else None
    rest, test = train_test_split(
        np.arange(len(arrays.labels)), TEST_FRACTION, SPLIT_SEED, stratify
    )
    return rest, test


def split_arrays(arrays: Arrays, task: Task) -> Splits:
    """Train/validation/test with a fixed seed, standardized on the training split only."""
    index_rest, index_test = _holdout(arrays, task)
    index_train, index_val = train_test_split(
        index_rest,
        VAL_FRACTION / (1 - TEST_FRACTION),
        SPLIT_SEED,
        arrays.labels[index_rest] if task == "classification" else None,
    )
    return _standardized(arrays, task, index_train, index_val, index_test)


def fold_problem(arrays: Arrays, task: Task, folds: int) -> str | None:
    """Why the rows outside the test split cannot make `folds` folds; None when they can."""
    index_rest, _ = _holdout(arrays, task)
    if task == "regression":
        if len(index_rest) < folds:
            return f"{folds} folds, but only {len(index_rest)} rows outside the test split"
        return None
    # Stratified: every fold validates on each class, so each needs a row per fold. The
    # labels are class indices by now: say how many rows, not which class.
    fewest = np.unique(arrays.labels[index_rest], return_counts=True)[1].min()
    if fewest < folds:
        return (
            f"{folds} folds, but the rarest class has {fewest} rows outside the test split: "
            "each class needs one per fold"
        )
    return None


def fold_indices(arrays: Arrays, task: Task, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation over the rows outside the test split: (training rows, validation
    rows) of each fold, as row numbers of `arrays`. Stratified for classification;
    shuffled with the split's fixed seed, so every trial sees the same folds."""
    from sklearn.model_selection import KFold, StratifiedKFold

    index_rest, _ = _holdout(arrays, task)
    if task == "classification":
        splitter: KFold | StratifiedKFold = StratifiedKFold(
            folds, shuffle=True, random_state=SPLIT_SEED
        )
    else:
        splitter = KFold(folds, shuffle=True, random_state=SPLIT_SEED)
    labels = arrays.labels[index_rest]
    return [(index_rest[t], index_rest[v]) for t, v in splitter.split(index_rest, labels)]


def fold_splits(arrays: Arrays, task: Task, folds: int) -> list[Splits]:
    """Each fold's splits: the others train, it validates, the test split stays as
    without folds; each standardized on its own training part."""
    _, index_test = _holdout(arrays, task)
    return [
        _standardized(arrays, task, train, val, index_test)
        for train, val in fold_indices(arrays, task, folds)
    ]


def _standardized(
    arrays: Arrays,
    task: Task,
    index_train: np.ndarray,
    index_val: np.ndarray,
    index_test: np.ndarray,
) -> Splits:
    train_features = arrays.features[index_train]
    # Sequences: per feature over all samples and steps. A recurrent or conv1d layer reads
    # every step with the same weights, so a value must mean the same at every step.
    axes = (0, 1) if train_features.ndim == 3 else (0,)
    mean = train_features.mean(axis=axes)
    std = train_features.std(axis=axes)
    std[std == 0] = 1.0
    target_mean, target_std = 0.0, 1.0
    if task == "regression":
        target_mean = float(arrays.labels[index_train].mean())
        target_std = float(arrays.labels[index_train].std()) or 1.0

    def part(index: np.ndarray) -> Arrays:
        features = ((arrays.features[index] - mean) / std).astype(np.float32)
        labels = arrays.labels[index]
        if task == "regression":
            labels = ((labels - target_mean) / target_std).astype(np.float32)
        return Arrays(features, labels)

    return Splits(
        train=part(index_train),
        val=part(index_val),
        test=part(index_test),
        feature_shape=tuple(arrays.features.shape[1:]),
        num_classes=int(arrays.labels.max()) + 1 if task == "classification" else 0,
        target_mean=target_mean,
        target_std=target_std,
        feature_mean=mean,
        feature_std=std,
        classes=arrays.classes if task == "classification" else (),
    )
