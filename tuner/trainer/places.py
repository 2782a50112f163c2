"""Where in a data file a problem is, said as the user looks for it.

The checks find rows as 0-based indices of the data; a user opens a CSV in an editor
and looks for a line number (the header is line 1, so data row i is line i + 2), and
counts a parquet's or an .npz's rows from 1. Numpy only, as tuner.trainer.data.
"""

from __future__ import annotations

import numpy as np

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
