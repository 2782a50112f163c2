"""The line of a .csv file that a data row starts on, as an editor numbers it.

pandas skips blank lines (empty or only spaces) and reads a quoted field over several
lines as one: data row i is line i + 2 (after the header) only in a file with neither,
and an error that named "line 6" in one sent the user to the wrong row. Python's csv
reader counts the lines each record spans; the rows it yields that pandas skips are
left out the same way.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from tuner.trainer.csv_scan import open_data_file


def _skipped_by_pandas(record: list[str]) -> bool:
    return not record or (len(record) == 1 and not record[0].strip())


def csv_line_numbers(location: str, rows: Sequence[int]) -> list[int]:
    """The 1-based line each of `rows` (0-based data rows) starts on in the .csv at
    `location`. It reads the file only up to the last of them; where it cannot (the
    file gone since, a field over the csv module's limit), row i is said as line i + 2."""
    wanted = set(rows)
    found: dict[int, int] = {}
    if not wanted:
        return []
    try:
        with open_data_file(location) as stream:
            text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
            reader = csv.reader(text)
            ended = 0  # the line the previous record ended on
            data_row = -1  # the header is not a data row
            for record in reader:
                starts, ended = ended + 1, reader.line_num
                if _skipped_by_pandas(record):
                    continue
                if data_row in wanted:
                    found[data_row] = starts
                    if len(found) == len(wanted):
                        break
                data_row += 1
            else:  # the file ended first: the last rows were not read as pandas read them
                found.clear()
    except Exception:  # the line numbers are help, never a reason to fail the message
        found.clear()
    return [found.get(row, row + 2) for row in rows]
