"""A bad row of a .csv is named by the line an editor shows it on.

An error said "lines 5, 10" counting data row i as line i + 2: in a file with blank
lines, or a quoted field over two lines, those were other rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tuner.trainer.csv_lines import csv_line_numbers
from tuner.trainer.data import DataError, DataSource, load_arrays
from tuner.trainer.knobs import ClassifierKnobs

TEXT = (
    "a,note,label\n"  # line 1
    "1,plain,0\n"  # 2: data row 0
    "\n"  # 3
    "   \n"  # 4: only spaces, skipped as pandas skips it
    '2,"over\ntwo lines",1\n'  # 5-6: data row 1
    "\n"  # 7
    "3,last,0\n"  # 8: data row 2
)


def test_each_row_is_named_by_the_line_it_starts_on(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text(TEXT)
    assert csv_line_numbers(str(path), [0, 1, 2]) == [2, 5, 8]
    assert csv_line_numbers(str(path), [2]) == [8]
    assert csv_line_numbers(str(path), []) == []


def test_a_file_it_cannot_read_again_is_counted_as_before(tmp_path: Path) -> None:
    assert csv_line_numbers(str(tmp_path / "gone.csv"), [0, 3]) == [2, 5]


def test_rows_with_nan_in_a_file_with_blank_lines_are_named_by_their_lines(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    lines = ["x1,x2,label"]
    for row in range(30):
        x1 = "" if row in (4, 17) else f"{rng.normal():.3f}"  # empty: NaN
        lines.append(f"{x1},{rng.normal():.3f},{row % 2}")
        if row % 5 == 0:
            lines.append("")  # a blank line every few rows
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n")
    source = DataSource.of(ClassifierKnobs(data_path=str(path)))  # type: ignore[arg-type]
    with pytest.raises(DataError) as caught:
        load_arrays(source, "classification")
    assert "2 rows with NaN or infinite values (lines 7, 23)" in caught.value.problem
    shown = path.read_text().splitlines()
    assert shown[7 - 1].startswith(",") and shown[23 - 1].startswith(",")
