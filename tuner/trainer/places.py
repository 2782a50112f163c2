"""Where in a data file a problem is, said as the user looks for it.

The checks find rows as 0-based indices of the data; a user opens a CSV in an editor
and looks for a line number (tuner.trainer.csv_lines), and counts a parquet's or an
.npz's rows from 1.
"""

from __future__ import annotations

import numpy as np

from tuner.trainer.csv_lines import csv_line_numbers
from tuner.trainer.data_files import listed_names

_SHOWN = 5


def rows_at(rows: np.ndarray, source: str) -> str:
    """`rows` (0-based data rows) of `source` as the user finds them: "lines 6, 19" in a
    .csv (the lines they start on, blank lines and fields over several lines counted),
    "rows 5, 18" in any other file or dataset; the first few, then "..."."""
    first = [int(r) for r in rows[:_SHOWN]]
    if source.endswith(".csv"):
        word, numbers = "line", csv_line_numbers(source, first)
    else:
        word, numbers = "row", [r + 1 for r in first]
    shown = ", ".join(str(n) for n in numbers)
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
