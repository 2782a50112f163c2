"""A data file's label column checked: rows without a label, a target that is not numbers.

Numpy only, as tuner.trainer.data. A label column is the user's, of any type: a CSV
column of text with an empty cell reads as text and a float NaN, which numpy cannot
sort into classes, and a regressor's target column of text is no number. Each is one
line for the user here, not numpy's traceback from the middle of `tuner validate`.
"""

from __future__ import annotations

import numpy as np

from tuner.trainer.data_files import DataError


def missing_rows(labels: np.ndarray) -> np.ndarray:
    """Rows without a label: NaN in a numeric column; NaN or None in a column of objects
    (text with an empty cell, as pandas reads it)."""
    if labels.dtype.kind == "f":
        return np.flatnonzero(np.isnan(labels))
    if labels.dtype.kind != "O":
        return np.empty(0, dtype=np.int64)
    # NaN is the one value unequal to itself; `== None` compares each object, as meant.
    absent = (labels != labels) | (labels == None)  # noqa: E711
    return np.flatnonzero(absent)


def regression_targets(labels: np.ndarray, source: str, key: str, column: str) -> np.ndarray:
    """The regressor's targets as float64, or the DataError naming values that are not
    numbers (a text column: the classifier takes those)."""
    try:
        return np.asarray(labels, dtype=np.float64)
    except (ValueError, TypeError):
        pass
    text = [value for value in dict.fromkeys(labels.tolist()) if not _is_number(value)]
    shown = ", ".join(repr(str(value)[:40]) for value in text[:3]) + (
        ", ..." if len(text) > 3 else ""
    )
    raise DataError(
        key,
        f"{source}: the regressor's target {column!r} must hold numbers; it holds "
        f"{shown} (class labels are for builtin:classifier)",
    )


def _is_number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False
    return True
