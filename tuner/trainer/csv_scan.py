"""A .csv checked a chunk at a time, for `tuner validate`: what the trainers' reader
(tuner.trainer.data_files) would refuse, found without holding the file.

Reading a file whole took about 3.5 times its size at the peak (its bytes, pandas'
frame, the float32 features, the splits): 730 MB to check a 208 MiB file. A check
does not need the features, only what the checks read: the columns, which rows hold
NaN or infinity, and the label column, which the class counts and the stratified
splits read. This holds one chunk of rows and the labels, never the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from tuner.trainer.data_files import (
    MAX_HEADER_BYTES,
    Arrays,
    DataError,
    listed_names,
    s3_filesystem,
)

_BLOCK_BYTES = 2**20
_CHUNK_BYTES = 4 * 2**20  # about this much text per chunk of rows: pandas takes ~3.5x
_KEY = "config.data_path"


@dataclass(frozen=True)
class CsvScan:
    """A checked .csv without its features: `arrays.features` has no columns (N, 0), so
    the split checks, which read only the labels, run on it as on the whole file."""

    arrays: Arrays
    feature_shape: tuple[int, ...]
    bad_feature_rows: np.ndarray  # rows whose features hold NaN or infinity (as float32)
    empty_columns: tuple[str, ...]  # feature columns without one finite value


@contextmanager
def open_data_file(location: str) -> Iterator[IO[bytes]]:
    """The file's bytes as a stream, refused as the trainers' reader refuses it."""
    if location.startswith("s3://"):
        try:
            stream = s3_filesystem().open_input_stream(location.removeprefix("s3://"))
        except (OSError, FileNotFoundError) as exc:
            raise DataError(_KEY, f"cannot read {location}: {exc}") from None
    else:
        path = Path(location).expanduser()
        if not path.is_file():
            raise DataError(_KEY, f"{location}: file not found")
        stream = path.open("rb")
    with stream:
        yield stream


def _rows_per_chunk(location: str) -> int:
    """Refuse what cannot be a CSV (a NUL byte, a first line too long to be a header),
    as the reader does, in one pass of fixed-size blocks; then the number of rows that
    make about _CHUNK_BYTES, from the first block's lines."""
    seen, first_newline, lines_in_first = 0, -1, 0
    with open_data_file(location) as stream:
        while block := stream.read(_BLOCK_BYTES):
            if (at := block.find(b"\0")) >= 0:
                raise DataError(
                    _KEY,
                    f"{location}: not a UTF-8 text CSV "
                    f"(a NUL byte at byte {seen + at:,}: binary or UTF-16?)",
                )
            if seen == 0:
                lines_in_first = block.count(b"\n")
            if first_newline < 0 and (at := block.find(b"\n")) >= 0:
                first_newline = seen + at
            seen += len(block)
    if seen > MAX_HEADER_BYTES and not 0 <= first_newline < MAX_HEADER_BYTES:
        raise DataError(
            _KEY,
            f"{location}: its first line is over {MAX_HEADER_BYTES:,} bytes, "
            "too long to be a CSV header",
        )
    line_bytes = min(seen, _BLOCK_BYTES) / max(lines_in_first, 1)
    return max(64, int(_CHUNK_BYTES / max(line_bytes, 1.0)))


def scan_csv(location: str, label_column: str) -> CsvScan:
    """A .csv checked as `read_file` checks it, one chunk of rows at a time; DataError
    with the reader's words when it is not usable."""
    import pandas as pd
    from pandas.api.types import is_numeric_dtype

    rows = _rows_per_chunk(location)
    labels: list[np.ndarray] = []
    bad: list[np.ndarray] = []
    text: set[str] = set()
    columns: list[str] = []
    count = 0
    finite: np.ndarray | None = None  # per feature column: a finite value seen
    with open_data_file(location) as stream:
        try:
            for chunk in pd.read_csv(stream, chunksize=rows):
                if not columns:
                    columns = [str(c) for c in chunk.columns]
                    if label_column not in chunk.columns:
                        raise DataError(
                            "config.label_column",
                            f"{label_column!r} is not a column of {location} "
                            f"({listed_names(chunk.columns, 20)})",
                        )
                features = chunk.drop(columns=[label_column])
                text.update(
                    str(c) for c, kind in features.dtypes.items() if not is_numeric_dtype(kind)
                )
                if not text:  # once a column is text, no array is made of the features
                    values = features.to_numpy(dtype=np.float32)
                    ok = np.isfinite(values)
                    bad.append(count + np.flatnonzero(~ok.all(1)))
                    finite = ok.any(0) if finite is None else finite | ok.any(0)
                labels.append(chunk[label_column].to_numpy())
                count += len(chunk)
        except DataError:
            raise
        except Exception as exc:  # any parser failure is a bad file, said in one line
            raise DataError(_KEY, f"{location}: cannot parse: {exc}") from None
    if count == 0:
        # Columns of no rows read as text: "must be numeric" would send the user astray.
        raise DataError(_KEY, f"{location}: no rows, only a header")
    if len(columns) == 1:
        raise DataError(_KEY, f"{location}: no feature columns besides {label_column!r}")
    if text:
        ordered = [c for c in columns if c in text and c != label_column]
        raise DataError(
            _KEY, f"{location}: feature columns must be numeric: {listed_names(ordered, 5)}"
        )
    assert finite is not None  # rows of numeric columns were read: none of the above
    feature_columns = [c for c in columns if c != label_column]
    return CsvScan(
        arrays=Arrays(np.empty((count, 0), dtype=np.float32), np.concatenate(labels)),
        feature_shape=(len(columns) - 1,),
        bad_feature_rows=np.concatenate(bad),
        empty_columns=tuple(c for c, seen in zip(feature_columns, finite, strict=True) if not seen),
    )
