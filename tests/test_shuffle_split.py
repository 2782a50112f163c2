"""The built-in trainers' train/validation/test split is scikit-learn's, row for row,
without importing scikit-learn."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.model_selection import train_test_split as sklearn_split

from tuner.trainer.shuffle_split import train_test_split

LABEL_SETS = {
    "balanced, 10 classes": np.repeat(np.arange(10), 18),
    "digits-like, uneven": np.random.RandomState(0).randint(0, 10, 1797),
    "two classes, 9 to 1": np.array([0] * 90 + [1] * 10),
    "ties in the remainders": np.array([0] * 7 + [1] * 7 + [2] * 7 + [3] * 3),
    "string labels": np.array(["cat", "dog", "eel"] * 11 + ["cat"]),
    "five rows a class": np.repeat(np.arange(4), 5),
}


@pytest.mark.parametrize("labels", LABEL_SETS.values(), ids=LABEL_SETS.keys())
@pytest.mark.parametrize("test_size", [0.2, 0.25, 1 / 3])
@pytest.mark.parametrize("seed", [0, 20240601])
def test_a_stratified_split_takes_the_rows_scikit_learn_takes(
    labels: np.ndarray, test_size: float, seed: int
) -> None:
    indices = np.arange(100, 100 + len(labels))
    ours = train_test_split(indices, test_size, seed, labels)
    theirs = sklearn_split(indices, test_size=test_size, random_state=seed, stratify=labels)
    assert [a.tolist() for a in ours] == [b.tolist() for b in theirs]


@pytest.mark.parametrize("rows", [5, 17, 1797])
def test_an_unstratified_split_takes_the_rows_scikit_learn_takes(rows: int) -> None:
    indices = np.arange(rows) * 3
    ours = train_test_split(indices, 0.2, 20240601)
    theirs = sklearn_split(indices, test_size=0.2, random_state=20240601)
    assert [a.tolist() for a in ours] == [b.tolist() for b in theirs]


def test_a_class_of_one_row_cannot_be_stratified_and_says_which() -> None:
    with pytest.raises(ValueError, match=r"Classes with too few members are: \[7\]"):
        train_test_split(np.arange(11), 0.2, 0, np.array([0] * 5 + [1] * 5 + [7]))
    with pytest.raises(ValueError, match="test_size = 2 should be greater or equal"):
        train_test_split(np.arange(10), 0.2, 0, np.repeat(np.arange(5), 2))


def test_the_builtin_digits_load_and_split_without_scikit_learn() -> None:
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from tuner.trainer.data import DataSource, load_splits\n"
            "from tuner.trainer.knobs import ClassifierKnobs\n"
            "splits = load_splits(ClassifierKnobs(), 'classification')\n"
            "print(len(splits.train.labels), len(splits.val.labels), len(splits.test.labels))\n"
            "print('sklearn' in sys.modules)\n",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    sizes, imported = loaded.stdout.split("\n")[:2]
    assert sizes == "1077 360 360"
    assert imported == "False"
