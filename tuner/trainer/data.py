"""Data for the built-in trainers: built-in sets or the user's file, split and standardized.

Numpy only (no torch), so `tuner validate` can load and check a data file before any
trial starts. How the rows are split (with a fixed seed, into folds too) is
tuner.trainer.splits.
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from tuner.trainer.classes import class_names
from tuner.trainer.csv_scan import scan_csv
from tuner.trainer.data_files import Arrays, DataError, read_file
from tuner.trainer.data_images import is_folder, read_folder
from tuner.trainer.knobs import SEQUENCE_MODELS, TORCHVISION_BLOCKS, TrainerKnobs
from tuner.trainer.labels import missing_rows, regression_targets
from tuner.trainer.places import empty_columns, empty_columns_problem, rows_at
from tuner.trainer.splits import (
    SPLIT_SEED,
    Splits,
    Task,
    fold_indices,
    fold_problem,
    fold_splits,
    split_arrays,
)

# What the trainers, the engine and the tracking import from here; the file readers
# and their types live in data_files, the splitting in splits.
__all__ = [
    "Arrays",
    "DataError",
    "DataSource",
    "Splits",
    "Task",
    "adopt_splits",
    "fold_indices",
    "fold_problem",
    "fold_splits",
    "load_arrays",
    "load_splits",
    "model_problem",
    "model_splits",
    "scanned_arrays",
    "split_arrays",
]


@dataclass(frozen=True)
class DataSource:
    """The knobs that decide the data; trials that share them share one loaded copy."""

    dataset: str
    data_path: str | None
    label_column: str
    synthetic_samples: int
    synthetic_features: int
    synthetic_classes: int
    synthetic_difficulty: float
    sequences: bool = False  # a 3-D .npz is (N, T, F) sequences, not (N, H, W) grey images
    image_size: int = 32  # an image folder's images are resized to this square side

    @classmethod
    def of(cls, knobs: TrainerKnobs) -> DataSource:
        return cls(
            dataset=getattr(knobs, "dataset", "digits"),
            data_path=knobs.data_path,
            label_column=knobs.label_column,
            synthetic_samples=knobs.synthetic_samples,
            synthetic_features=knobs.synthetic_features,
            synthetic_classes=knobs.synthetic_classes,
            synthetic_difficulty=knobs.synthetic_difficulty,
            sequences=knobs.model in SEQUENCE_MODELS,
            image_size=knobs.image_size,
        )


# --- sources ---------------------------------------------------------------------------


def _builtin(name: str, task: Task, source: DataSource) -> Arrays:
    if name == "synthetic":
        return _synthetic(task, source)
    if name == "digits":
        images, target = _digits()
        # 8x8 grey images: keep their shape so a CNN can see it.
        return Arrays(images.astype(np.float32)[:, None], target.astype(np.int64))
    # Imported here: a trial that takes the sweep's data never loads any (~1 s).
    from sklearn import datasets

    loaders = {
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
        "diabetes": datasets.load_diabetes,
    }
    bunch = loaders[name]()
    labels = bunch.target.astype(np.int64 if task == "classification" else np.float32)
    return Arrays(np.asarray(bunch.data, dtype=np.float32), labels)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits, read from the file it ships the way `load_digits` reads it,
    without importing scikit-learn: that import was a second of every sweep's start."""
    package = importlib.util.find_spec("sklearn")
    folders = package.submodule_search_locations if package else None
    shipped = Path(next(iter(folders)), "datasets", "data", "digits.csv.gz") if folders else None
    if shipped is None or not shipped.is_file():  # laid out otherwise: ask scikit-learn
        from sklearn import datasets

        bunch = datasets.load_digits()
        return bunch.images, bunch.target
    with gzip.open(shipped, mode="rt", encoding="utf-8") as rows:
        data = np.loadtxt(rows, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)


def _synthetic(task: Task, knobs: DataSource) -> Arrays:
    """A seeded synthetic set whose size and difficulty are knobs (for scale tests)."""
    from sklearn import datasets

    difficulty = knobs.synthetic_difficulty
    informative = max(2, knobs.synthetic_features // 2)
    if task == "classification":
        x, y = datasets.make_classification(
            n_samples=knobs.synthetic_samples,
            n_features=knobs.synthetic_features,
            n_informative=informative,
            n_redundant=0,
            n_classes=knobs.synthetic_classes,
            n_clusters_per_class=1,
            class_sep=2.0 * (1.0 - difficulty) + 0.1,  # harder: classes overlap more
            flip_y=0.2 * difficulty,  # harder: more label noise
            random_state=SPLIT_SEED,
        )
        return Arrays(x.astype(np.float32), y.astype(np.int64))
    x, y = datasets.make_regression(
        n_samples=knobs.synthetic_samples,
        n_features=knobs.synthetic_features,
        n_informative=informative,
        noise=100.0 * difficulty,
        random_state=SPLIT_SEED,
    )
    return Arrays(x.astype(np.float32), y.astype(np.float32))


def _check(
    arrays: Arrays,
    source: str,
    task: Task,
    key: str,
    bad_rows: np.ndarray | None = None,
    column: str = "label",
    empty: tuple[str, ...] | None = None,
) -> Arrays:
    """`arrays` as the trainers take them, or the DataError that says why they cannot.
    `bad_rows`, `empty`: the rows whose features hold NaN or infinity and the feature
    columns without a number, found while the features were read (a scanned .csv has
    none left to look at); `column`: the label column."""
    if len(arrays.labels) < 10:
        raise DataError(key, f"{source}: {len(arrays.labels)} rows; at least 10 are needed")
    if empty is None:
        empty = empty_columns(arrays.features, arrays.feature_names)
    if empty:
        raise DataError(key, empty_columns_problem(empty, source, len(arrays.labels)))
    if bad_rows is None:
        bad_rows = np.flatnonzero(
            ~np.isfinite(arrays.features.reshape(len(arrays.features), -1)).all(1)
        )
    if task == "regression":
        labels = regression_targets(arrays.labels, source, "config.label_column", column)
        bad_rows = np.union1d(bad_rows, np.flatnonzero(~np.isfinite(labels)))
    if len(bad_rows):
        raise DataError(
            key,
            f"{source}: {len(bad_rows)} rows with NaN or infinite values "
            f"({rows_at(bad_rows, source)})",
        )
    if task == "classification" and len(unlabelled := missing_rows(arrays.labels)):
        raise DataError(
            key,
            f"{source}: {len(unlabelled)} rows without a label in {column!r} "
            f"({rows_at(unlabelled, source)})",
        )
    if task == "classification":
        # Any label values (strings, 3/7/9...) become class indices 0..K-1.
        classes, index, counts = np.unique(arrays.labels, return_inverse=True, return_counts=True)
        if len(classes) < 2:
            raise DataError(key, f"{source}: one class only; a classifier needs two or more")
        # The splits keep each class's share (stratified): a class needs a row in each.
        scarce = [
            f"{c.item()!r} ({n} row{'s' if n > 1 else ''})"
            for c, n in zip(classes, counts, strict=True)
            if n < 3
        ]
        if scarce:
            raise DataError(
                key,
                f"{source}: each class needs at least 3 rows (train, validation, test); "
                f"too few: {', '.join(scarce[:5])}",
            )
        return Arrays(arrays.features, index.astype(np.int64), class_names(classes))
    return Arrays(arrays.features, labels.astype(np.float32))


def load_arrays(source: DataSource, task: Task) -> Arrays:
    """All rows of the data the knobs name, checked: one clear DataError if unusable."""
    location = source.data_path
    if location is not None and is_folder(location):
        if task == "regression":  # a folder's labels are its class names
            raise DataError("config.data_path", f"{location}: image folders are for classification")
        return _check(read_folder(location, source.image_size), location, task, "config.data_path")
    if location is not None:
        arrays = read_file(location, source.label_column, source.sequences)
        return _check(arrays, location, task, "config.data_path", column=source.label_column)
    arrays = _builtin(source.dataset, task, source)
    return _check(arrays, f"dataset {source.dataset!r}", task, "config.dataset")


def scanned_arrays(source: DataSource, task: Task) -> tuple[Arrays, tuple[int, ...]] | None:
    """For a .csv, what `tuner validate` checks without holding the file: its rows with
    the labels only (features of no columns), checked as load_arrays and the split
    check them, and one sample's shape; None for any other source (load it)."""
    location = source.data_path
    if location is None or not location.endswith(".csv") or is_folder(location):
        return None
    scan = scan_csv(location, source.label_column)
    arrays = _check(
        scan.arrays,
        location,
        task,
        "config.data_path",
        scan.bad_feature_rows,
        source.label_column,
        scan.empty_columns,
    )
    try:
        split_arrays(arrays, task)
    except ValueError as exc:  # as _cached_splits says it
        raise DataError("config.data_path", f"{location}: cannot split: {exc}") from None
    return arrays, scan.feature_shape


def model_problem(model: str, feature_shape: tuple[int, ...]) -> str | None:
    """Why `model` cannot read samples of `feature_shape`; None when it can (mlp reads all)."""
    kind = {1: "tabular", 2: "sequences (T, F)", 3: "images (C, H, W)"}[len(feature_shape)]
    this = f"this data is {kind}, one sample {feature_shape}"
    if model == "cnn" and len(feature_shape) != 3:
        return f"'cnn' needs image-shaped data (N, C, H, W); {this}"
    if model in TORCHVISION_BLOCKS and (len(feature_shape) != 3 or feature_shape[0] not in (1, 3)):
        return f"{model!r} reads grey or RGB images (N, 1 or 3, H, W); {this}"
    if model in SEQUENCE_MODELS and len(feature_shape) != 2:
        return (
            f"{model!r} needs sequences: an .npz whose features are (N, T, F), "
            f"or a .parquet whose feature columns hold lists; {this}"
        )
    return None


# --- splits, cached ---------------------------------------------------------------------


@lru_cache(maxsize=8)
def _cached_splits(source: DataSource, task: Task, folds: int) -> tuple[Splits, ...]:
    arrays = load_arrays(source, task)
    where = source.data_path or f"dataset {source.dataset!r}"
    try:
        if folds == 1:
            return (split_arrays(arrays, task),)
        problem = fold_problem(arrays, task, folds)
        if problem is None:
            return tuple(fold_splits(arrays, task, folds))
    except ValueError as exc:  # scikit-learn's stratified split: too few rows per class
        raise DataError("config.data_path", f"{where}: cannot split: {exc}") from None
    raise DataError("config.cv_folds", f"{where}: {problem}")


# Splits this process was handed, loaded elsewhere (the sweep's driver, once per sweep:
# tuner.engine.shared_data): keyed like _cached_splits, looked up before it.
_ADOPTED: dict[tuple[DataSource, Task, int], tuple[Splits, ...]] = {}


def adopt_splits(source: DataSource, task: Task, folds: int, splits: tuple[Splits, ...]) -> None:
    """Use `splits` wherever this process would load `source` split into `folds`."""
    _ADOPTED[(source, task, folds)] = splits


def adopted(source: DataSource, task: Task, folds: int) -> bool:
    return (source, task, folds) in _ADOPTED


def forget_adopted() -> None:
    """Load and split in this process again what it was handed (a benchmark compares)."""
    _ADOPTED.clear()


def _splits(source: DataSource, task: Task, folds: int) -> tuple[Splits, ...]:
    return _ADOPTED.get((source, task, folds)) or _cached_splits(source, task, folds)


def load_splits(knobs: TrainerKnobs, task: Task, fold: int | None = None) -> Splits:
    """Handed over by the sweep (adopt_splits), else loaded and cached per process: a
    reused Ray actor loads and splits its data once.

    `fold`: that fold's splits under `cv_folds` (None: the splits without folds)."""
    if fold is None:
        return _splits(DataSource.of(knobs), task, 1)[0]
    return _splits(DataSource.of(knobs), task, knobs.cv_folds)[fold]


def sweep_splits(source: DataSource, task: Task, folds: int) -> tuple[Splits, ...]:
    """What a sweep's driver loads once and hands to every trial (folds=1: no folds)."""
    return _cached_splits(source, task, folds)


def model_splits(knobs: TrainerKnobs, task: Task) -> Splits:
    """The splits a checkpoint's `model` trained on: fold 0's under `cv_folds`."""
    return load_splits(knobs, task, 0 if knobs.cv_folds > 1 else None)
