"""`tuner validate` checks a .csv a chunk at a time (tuner.trainer.csv_scan): it took
about 3.5 times the file's size at its peak to load it whole, 730 MB for 208 MiB. The
scan must refuse what loading refuses, in the same words, and pass what it passes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import cli_env, run_cli
from tests.test_trainer_data import (  # noqa: F401 (table: a fixture)
    BAD_CASES,
    _csv,
    table,
    write_classifier_sweep,
)
from tuner.trainer import csv_scan
from tuner.trainer.data import (
    DataError,
    DataSource,
    Task,
    fold_problem,
    load_arrays,
    scanned_arrays,
    split_arrays,
)
from tuner.trainer.knobs import ClassifierKnobs, RegressorKnobs


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of a few rows: every case below spans many of them."""
    monkeypatch.setattr(csv_scan, "_CHUNK_BYTES", 1000)


def _source(location: str, task: Task = "classification") -> DataSource:
    knobs = ClassifierKnobs if task == "classification" else RegressorKnobs
    return DataSource.of(knobs(data_path=location))  # type: ignore[arg-type]


def _loaded(location: str, task: Task = "classification") -> DataError | None:
    """What loading the file whole, then splitting it, says (None: nothing)."""
    try:
        split_arrays(load_arrays(_source(location, task), task), task)
    except DataError as exc:
        return exc
    return None


def _scanned(location: str, task: Task = "classification") -> DataError | None:
    try:
        scanned_arrays(_source(location, task), task)
    except DataError as exc:
        return exc
    return None


def _late(frame: pd.DataFrame, column: str, value: object, row: int) -> pd.DataFrame:
    broken = frame.astype({column: object}).copy()
    broken.loc[row, column] = value
    return broken


# The .npz cases and a file of another suffix are loaded whole, as before.
CSV_CASES = [
    case
    for case in BAD_CASES
    if "npz" not in case and case not in ("wrong-shapes", "unknown-suffix")
]


@pytest.mark.parametrize("case", [*CSV_CASES, "late-text", "late-nan-label", "late-infinity"])
def test_the_scan_refuses_what_loading_refuses_in_the_same_words(
    case: str,
    table: pd.DataFrame,  # noqa: F811
    tmp_path: Path,
) -> None:
    late = {  # past the first chunks, where a first-chunk check would miss it
        "late-text": lambda: _csv(tmp_path, _late(table, "hue", "red", 170)),
        "late-nan-label": lambda: _csv(tmp_path, _late(table, "label", np.nan, 160)),
        "late-infinity": lambda: _csv(tmp_path, _late(table, "ash", "1e39", 150)),
    }
    location = late[case]() if case in late else BAD_CASES[case][0](tmp_path, table)
    assert location.endswith(".csv")
    loaded, scanned = _loaded(location), _scanned(location)
    assert loaded is not None and scanned is not None
    assert (scanned.key, scanned.problem) == (loaded.key, loaded.problem)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_good_csv_scans_to_its_labels_shape_and_folds(
    task: Task,
    table: pd.DataFrame,  # noqa: F811
    tmp_path: Path,
) -> None:
    location = _csv(tmp_path, table.assign(label=table["label"].map({0: "a", 1: "b", 2: "c"})))
    if task == "regression":
        location = _csv(tmp_path, table.assign(label=table["alcohol"] * 2))
    loaded = load_arrays(_source(location, task), task)
    scanned = scanned_arrays(_source(location, task), task)
    assert scanned is not None
    arrays, shape = scanned
    assert shape == loaded.features.shape[1:] and arrays.features.shape == (len(loaded.labels), 0)
    np.testing.assert_array_equal(arrays.labels, loaded.labels)
    for folds in (5, 60):  # one that fits, one that does not
        assert fold_problem(arrays, task, folds) == fold_problem(loaded, task, folds)


# The peak as the kernel keeps it for this process image (VmHWM): ru_maxrss of a child
# starts at its parent's peak, pytest's here, and hid the child's own.
MEASURE = textwrap.dedent(
    """
    import re, sys
    from pathlib import Path
    import pandas, numpy
    from tuner.trainer.data import DataSource, load_arrays, scanned_arrays, split_arrays
    from tuner.trainer.knobs import ClassifierKnobs

    def peak():
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) * 1024

    source = DataSource.of(ClassifierKnobs(data_path=sys.argv[1]))
    before = peak()
    if sys.argv[2] == "scan":
        scanned_arrays(source, "classification")
    else:
        split_arrays(load_arrays(source, "classification"), "classification")
    print(peak() - before)
    """
)


def test_the_scan_holds_a_chunk_and_the_labels_not_the_file(tmp_path: Path) -> None:
    """Loading grows with the file (about 3 times its size); the scan by a chunk of rows,
    whatever the size, and by the label column: 4 times the rows cost it next to nothing."""
    rows, columns = 100_000, 40
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.random((rows, columns)), columns=[f"f{i}" for i in range(columns)])
    frame = frame.assign(label=rng.integers(0, 3, rows))
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    frame.iloc[: rows // 4].to_csv(small, index=False, float_format="%.6f")
    frame.to_csv(large, index=False, float_format="%.6f")
    more = large.stat().st_size - small.stat().st_size

    def grown(location: Path, how: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", MEASURE, str(location), how],
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return int(done.stdout.strip())

    scanned_small, scanned, loaded = (
        grown(small, "scan"),
        grown(large, "scan"),
        grown(large, "load"),
    )
    assert scanned - scanned_small < more / 8, (scanned_small, scanned, more)
    assert scanned < loaded / 2, f"the scan grew {scanned:,} B, loading {loaded:,} B"


@pytest.mark.e2e
def test_validate_refuses_a_late_text_value_in_one_line(
    table: pd.DataFrame,  # noqa: F811
    tmp_path: Path,
) -> None:
    location = _csv(tmp_path, _late(table, "hue", "red", 170))
    write_classifier_sweep(tmp_path, "late-text", location)
    done = run_cli("validate", "sweep.yaml", cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert done.stderr == (
        f"error: sweep.yaml: config.data_path: {location}: feature columns must be numeric: hue\n"
    )
