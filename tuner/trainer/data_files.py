"""The user's data files: .csv, .parquet or .npz, from a local path or an s3:// URI.

Numpy and pyarrow only (pandas for tables, imported when a table is read; no torch), so
`tuner validate` can read and check a file before any trial starts.
"""

from __future__ import annotations

import io
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner.trainer.classes import ClassName

if TYPE_CHECKING:
    import pyarrow.fs

FILE_SUFFIXES = (".csv", ".parquet", ".npz")

# The features are float32, held whole by every trial's process: data larger than this
# is refused up front rather than swapping a worker to death. A compressed .npz or
# .parquet says how many values it holds before it is decompressed (500 KB of zeros
# held 400 MB): that is checked first.
MAX_FEATURE_BYTES = 4 * 2**30


class DataError(ValueError):
    """A problem with the data, named by the knob that points at it: one line for the user."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


@dataclass(frozen=True)
class Arrays:
    features: np.ndarray  # (N, F) tabular, (N, T, F) sequences or (N, C, H, W) images; float32
    labels: np.ndarray  # (N,) int64 class index, or float32 target
    # Checked classification data: the label value each class index stands for.
    classes: tuple[ClassName, ...] = ()
    # A table's feature column names, in order (none for an .npz, images, sequences):
    # what a check names when a column holds no numbers.
    feature_names: tuple[str, ...] = ()


# --- readers ---------------------------------------------------------------------------


def s3_filesystem() -> pyarrow.fs.S3FileSystem:
    """S3 as a trial reads it (data, image folders, init_from checkpoints), at the
    endpoint `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` names, if any."""
    import pyarrow.fs

    from tuner.defaults import s3_endpoint

    return pyarrow.fs.S3FileSystem(endpoint_override=s3_endpoint())


def _read_bytes(location: str) -> bytes:
    if location.startswith("s3://"):
        filesystem = s3_filesystem()
        try:
            with filesystem.open_input_stream(location.removeprefix("s3://")) as stream:
                return bytes(stream.readall())
        except (OSError, FileNotFoundError) as exc:
            raise DataError("config.data_path", f"cannot read {location}: {exc}") from None
    path = Path(location).expanduser()
    if not path.is_file():
        raise DataError("config.data_path", f"{location}: file not found")
    return path.read_bytes()


def _read_table(location: str, raw: bytes, label_column: str, sequences: bool) -> Arrays:
    import pandas as pd
    from pandas.api.types import is_numeric_dtype

    if location.endswith(".csv"):
        _looks_like_text(location, raw)
    try:
        if location.endswith(".csv"):
            frame = pd.read_csv(io.BytesIO(raw))
        else:
            _check_values(location, _parquet_values(raw))
            frame = pd.read_parquet(io.BytesIO(raw))
    except Exception as exc:  # any parser failure is a bad file, said in one line
        raise DataError("config.data_path", f"{location}: cannot parse: {exc}") from None
    if label_column not in frame.columns:
        raise DataError(
            "config.label_column",
            f"{label_column!r} is not a column of {location} ({listed_names(frame.columns, 20)})",
        )
    if frame.empty:
        # Columns of no rows read as text: "must be numeric" would send the user astray.
        raise DataError("config.data_path", f"{location}: no rows, only a header")
    features = frame.drop(columns=[label_column])
    if features.shape[1] == 0:
        raise DataError(
            "config.data_path", f"{location}: no feature columns besides {label_column!r}"
        )
    labels = frame[label_column].to_numpy()
    listed = [str(c) for c in features.columns if _holds_lists(features[c])]
    if listed:
        return Arrays(_sequences(location, features, listed, sequences), labels)
    text = [str(c) for c, kind in features.dtypes.items() if not is_numeric_dtype(kind)]
    if text:
        raise DataError(
            "config.data_path",
            f"{location}: feature columns must be numeric: {listed_names(text, 5)}",
        )
    names = tuple(str(c) for c in features.columns)
    return Arrays(features.to_numpy(dtype=np.float32), labels, feature_names=names)


# A CSV header longer than this is not one: pandas holds a line in memory many times
# over while it tokenizes it (a 30 MB line took 25 times its size).
MAX_HEADER_BYTES = 1024 * 1024


def _check_values(location: str, values: int) -> None:
    if values * 4 > MAX_FEATURE_BYTES:
        raise DataError(
            "config.data_path",
            f"{location}: holds {values:,} values, {values * 4 / 2**30:.1f} GiB as float32 "
            f"(at most {MAX_FEATURE_BYTES // 2**30} GiB); use fewer rows or features",
        )


def _npy_values(archive: Any, name: str) -> int:
    """The values an .npz's array declares in its header, read without decompressing it."""
    with archive.zip.open(f"{name}.npy") as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape = np.lib.format.read_array_header_1_0(member)[0]
        else:
            shape = np.lib.format.read_array_header_2_0(member)[0]
    return math.prod(shape)


def _parquet_values(raw: bytes) -> int:
    """The values a .parquet's footer declares, list elements included."""
    import pyarrow.parquet

    try:
        metadata = pyarrow.parquet.ParquetFile(io.BytesIO(raw)).metadata
    except Exception:  # not a parquet file: pandas says so below, in its words
        return 0
    return sum(
        metadata.row_group(g).column(c).num_values
        for g in range(metadata.num_row_groups)
        for c in range(metadata.num_columns)
    )


def _looks_like_text(location: str, raw: bytes) -> None:
    """Refuse what cannot be a CSV before pandas reads it: a NUL byte (a sparse or binary
    file named .csv: pandas took 100 times its size in memory, 11 GB for 300 MB of
    zeros) or a first line too long to be a header."""
    if (at := raw.find(b"\0")) >= 0:
        raise DataError(
            "config.data_path",
            f"{location}: not a UTF-8 text CSV (a NUL byte at byte {at:,}: binary or UTF-16?)",
        )
    if len(raw) > MAX_HEADER_BYTES and raw.find(b"\n", 0, MAX_HEADER_BYTES) < 0:
        raise DataError(
            "config.data_path",
            f"{location}: its first line is over {MAX_HEADER_BYTES:,} bytes, "
            "too long to be a CSV header",
        )


def listed_names(names: Any, most: int) -> str:
    """Column names for one line: each cut to 40 characters, at most `most` of them (a
    file's header is the user's data, of any length)."""
    names = [str(name) for name in names]
    shown = [name if len(name) <= 40 else name[:37] + "..." for name in names[:most]]
    more = f", and {len(names) - most:,} more" if len(names) > most else ""
    return ", ".join(shown) + more


def _holds_lists(column: Any) -> bool:
    first = column.iloc[0] if len(column) else None
    return isinstance(first, list | tuple | np.ndarray)


def _sequences(location: str, features: Any, listed: list[str], sequences: bool) -> np.ndarray:
    """Parquet sequences: one column per feature, each cell that feature's T steps,
    stacked to (N, T, F) for the sequence models."""
    if not sequences:
        raise DataError(
            "config.model",
            f"{location}: its columns {', '.join(listed[:5])} hold lists, which are sequences: "
            "use model gru, lstm or conv1d",
        )
    plain = [str(c) for c in features.columns if str(c) not in listed]
    if plain:
        raise DataError(
            "config.data_path",
            f"{location}: sequences need every feature column to hold lists (one value per "
            f"step); these hold single values: {', '.join(plain[:5])}",
        )
    try:
        columns = [np.stack(features[c].map(np.asarray).to_list()) for c in listed]
        stacked = np.stack(columns, axis=-1).astype(np.float32)
    except (ValueError, TypeError):
        raise DataError(
            "config.data_path",
            f"{location}: every sequence must have the same number of numeric steps, in "
            "every row and feature column",
        ) from None
    if stacked.ndim != 3:
        raise DataError("config.data_path", f"{location}: a cell holds nested lists, not steps")
    return stacked


def _read_npz(location: str, raw: bytes, label_column: str, sequences: bool) -> Arrays:
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            names = list(archive.files)
            if "features" not in names or label_column not in names:
                raise DataError(
                    "config.data_path",
                    f"{location}: an .npz needs arrays 'features' and {label_column!r} "
                    f"(found: {', '.join(names)})",
                )
            declared = sum(_npy_values(archive, name) for name in ("features", label_column))
            _check_values(location, declared)
            features, labels = archive["features"], archive[label_column]
    except DataError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        # Not an .npz at all, or arrays of Python objects: loading those would unpickle
        # whatever the file holds, which tuner never does.
        raise DataError("config.data_path", f"{location}: not a readable .npz: {exc}") from None
    if features.ndim == 3 and not sequences:  # (N, H, W) grey images
        features = features[:, None]
    if features.ndim not in (2, 3, 4) or labels.ndim != 1 or len(features) != len(labels):
        raise DataError(
            "config.data_path",
            f"{location}: expected features (N, F), (N, T, F) or (N, H, W), or (N, C, H, W) "
            f"and labels (N,); got {features.shape} and {labels.shape}",
        )
    if not np.issubdtype(features.dtype, np.number):
        raise DataError("config.data_path", f"{location}: features must be numeric")
    return Arrays(features.astype(np.float32), labels)


def read_file(location: str, label_column: str, sequences: bool = False) -> Arrays:
    """A user's .csv, .parquet or .npz file, from a local path or an s3:// URI.

    `sequences`: read a 3-D .npz as (N, T, F) sequences rather than (N, H, W) images;
    a .parquet whose feature columns hold lists is sequences (N, T, F) only."""
    if not location.endswith(FILE_SUFFIXES):
        raise DataError(
            "config.data_path",
            f"{location}: use a {', '.join(FILE_SUFFIXES)} file, "
            "or a folder of images with a sub-folder per class (ending in /)",
        )
    raw = _read_bytes(location)
    if location.endswith(".npz"):
        return _read_npz(location, raw, label_column, sequences)
    return _read_table(location, raw, label_column, sequences)
