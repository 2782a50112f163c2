"""A classifier's class names: the label values its outputs 0..K-1 stand for.

The trainer turns any labels (text, 3/7/9, an image folder's sub-folder names) into
class indices 0..K-1 in sorted order. Those names are kept, as the data held them, in
the checkpoint and beside the exported model, so a prediction can be read as a label.
Numpy only, as tuner.trainer.data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# JSON's scalars: what a label read from a CSV, parquet, .npz or folder name can be.
ClassName = str | int | float | bool

# Beside the exported MLflow model (`model/classes.json`): a file any language reads.
CLASSES_FILE = "classes.json"


def class_names(sorted_values: np.ndarray) -> tuple[ClassName, ...]:
    """`np.unique`'s sorted labels as plain Python values: numpy scalars become int,
    float, bool or str, the types JSON and a checkpoint loaded `weights_only` take."""
    names: list[ClassName] = []
    for value in sorted_values.tolist():  # tolist: numpy scalars to Python's
        names.append(value if isinstance(value, ClassName) else str(value))
    return tuple(names)


def write_classes(directory: str | Path, classes: Sequence[ClassName]) -> Path:
    """`classes.json` in `directory`: the list whose i-th entry is output i's label."""
    path = Path(directory) / CLASSES_FILE
    path.write_text(json.dumps(list(classes), ensure_ascii=False) + "\n", encoding="utf-8")
    return path
