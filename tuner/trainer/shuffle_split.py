"""scikit-learn's `train_test_split` (shuffled, stratified or not), in numpy alone.

The built-in trainers' splits were always scikit-learn's, with a fixed seed: this gives
the same rows for the same seed (tests/test_shuffle_split.py holds it to scikit-learn's
own on many label sets) without importing scikit-learn, which took a second of every
sweep's start in the driver. The steps are scikit-learn 1.x's `ShuffleSplit` and
`StratifiedShuffleSplit` (`_iter_indices`, `_approximate_mode`), one split.
"""

from __future__ import annotations

from math import ceil

import numpy as np


def train_test_split(
    indices: np.ndarray, test_size: float, seed: int, stratify: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`indices` split into (train, test), `test_size` a fraction of them."""
    n_samples = len(indices)
    n_test = ceil(test_size * n_samples)
    n_train = n_samples - n_test
    if n_train <= 0:
        raise ValueError(
            f"With n_samples={n_samples} and test_size={test_size}, the train set would be empty"
        )
    rng = np.random.RandomState(seed)
    if stratify is None:
        permutation = rng.permutation(n_samples)
        train, test = permutation[n_test : n_test + n_train], permutation[:n_test]
    else:
        train, test = _stratified(stratify, n_train, n_test, rng)
    return indices[train], indices[test]


def _stratified(
    labels: np.ndarray, n_train: int, n_test: int, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    classes, label_indices, class_counts = np.unique(
        labels, return_inverse=True, return_counts=True
    )
    if class_counts.min() < 2:
        raise ValueError(
            "The least populated classes in y have only 1 member, which is too few. "
            "The minimum number of groups for any class cannot be less than 2. "
            f"Classes with too few members are: {classes[class_counts < 2].tolist()}"
        )
    for split, size in (("train", n_train), ("test", n_test)):
        if size < len(classes):
            raise ValueError(
                f"The {split}_size = {size} should be greater or equal to the number "
                f"of classes = {len(classes)}"
            )
    by_class = np.split(np.argsort(label_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    train_per_class = _approximate_mode(class_counts, n_train, rng)
    test_per_class = _approximate_mode(class_counts - train_per_class, n_test, rng)
    train: list[int] = []
    test: list[int] = []
    per_class = zip(by_class, class_counts, train_per_class, test_per_class, strict=True)
    for rows, count, n_i, t_i in per_class:
        shuffled = rows.take(rng.permutation(count), mode="clip")
        train.extend(shuffled[:n_i])
        test.extend(shuffled[n_i : n_i + t_i])
    return rng.permutation(train), rng.permutation(test)


def _approximate_mode(
    class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState
) -> np.ndarray:
    """How many of `n_draws` each class gets: its share rounded down, the rest to the
    largest remainders, ties broken at random (as scikit-learn does)."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (tied,) = np.where(remainder == value)
            add_now = min(len(tied), need_to_add)
            floored[rng.choice(tied, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    counts: np.ndarray = floored.astype(int)
    return counts
