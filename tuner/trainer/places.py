"""Where in a data file a problem is, said as the user looks for it.

The checks find rows as 0-based indices of the data; a user opens a CSV in an editor
and looks for a line number (the header is line 1, so data row i is line i + 2), and
counts a parquet's or an .npz's rows from 1. Numpy only, as tuner.trainer.data.
"""

from __future__ import annotations

import numpy as np

from tuner.trainer.data_files import listed_names

_SHOWN = 5


def rows_at(rows: np.ndarray, source: str) -> str:
    """`rows` (0-based data rows) of `source` as the user finds them: "lines 6, 19" in a
    .csv (pandas skips blank lines: a file with some is off by them), "rows 5, 18" in
    any other file or dataset; the first few, then "..."."""
    if source.endswith(".csv"):
        word, first = "line", 2
    else:
        word, first = "row", 1
    shown = ", ".join(str(int(r) + first) for r in rows[:_SHOWN])
    more = ", ..." if len(rows) > _SHOWN else ""
    return f"{word}{'s' if len(rows) > 1 else ''} {shown}{more}"


def empty_columns(features: np.ndarray, names: tuple[str, ...]) -> tuple[str, ...]:
    """The columns of tabular `features` (N, F) without one finite value (an empty CSV
    column reads as NaN), by `names` or as `features[:, i]`; none for other shapes."""
    if features.ndim != 2 or not len(features):
        return ()
    empty = np.flatnonzero(~np.isfinite(features).any(0))
    return tuple(names[i] if names else f"features[:, {i}]" for i in empty)


def empty_columns_problem(columns: tuple[str, ...], source: str, rows: int) -> str:
    """One line naming the columns that hold no numbers: every row of theirs is bad, so
    "N rows with NaN" would name all rows and not the column to drop or fill."""
    which = "column" if len(columns) == 1 else "columns"
    verb = "holds" if len(columns) == 1 else "hold"
    return (
        f"{source}: feature {which} {listed_names(columns, 3)} {verb} no numbers "
        f"(empty, NaN or infinite in all {rows} rows)"
    )
