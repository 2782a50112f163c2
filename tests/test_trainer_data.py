"""The user's own data: every file format and S3 load to the same arrays; bad data is one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import S3_BUCKET as BUCKET
from tests.conftest import run_cli
from tuner.trainer.data import Arrays, DataError, DataSource, load_arrays, split_arrays
from tuner.trainer.knobs import ClassifierKnobs, RegressorKnobs


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """Wine as a user would have it: named feature columns and a 'label' column."""
    from sklearn.datasets import load_wine

    bunch = load_wine(as_frame=True)
    frame = bunch.data.astype(np.float32)
    frame["label"] = bunch.target
    return frame


def write_formats(frame: pd.DataFrame, folder: Path) -> dict[str, Path]:
    paths = {
        "csv": folder / "wine.csv",
        "parquet": folder / "wine.parquet",
        "npz": folder / "wine.npz",
    }
    frame.to_csv(paths["csv"], index=False)
    frame.to_parquet(paths["parquet"], index=False)
    np.savez(
        paths["npz"],
        features=frame.drop(columns=["label"]).to_numpy(np.float32),
        label=frame["label"].to_numpy(),
    )
    return paths


def load(location: str, **knobs: object) -> Arrays:
    return load_arrays(
        DataSource.of(ClassifierKnobs(data_path=location, **knobs)),  # type: ignore[arg-type]
        "classification",
    )


def test_csv_npz_parquet_and_s3_load_to_the_same_arrays(
    table: pd.DataFrame, tmp_path: Path, s3_endpoint: str
) -> None:
    paths = write_formats(table, tmp_path)
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").upload_file(
        str(paths["csv"]), BUCKET, "sets/wine.csv"
    )
    loaded = {name: load(str(path)) for name, path in paths.items()}
    loaded["s3"] = load(f"s3://{BUCKET}/sets/wine.csv")
    expected_x = table.drop(columns=["label"]).to_numpy(np.float32)
    for name, arrays in loaded.items():
        assert np.array_equal(arrays.features, expected_x), name
        assert np.array_equal(arrays.labels, table["label"].to_numpy()), name


def test_string_labels_become_class_indices(table: pd.DataFrame, tmp_path: Path) -> None:
    named = table.assign(label=table["label"].map({0: "barolo", 1: "grignolino", 2: "barbera"}))
    named.to_csv(tmp_path / "named.csv", index=False)
    arrays = load(str(tmp_path / "named.csv"))
    assert sorted(set(arrays.labels.tolist())) == [0, 1, 2]


def test_regression_targets_are_standardized_on_train_and_reported_back(
    table: pd.DataFrame, tmp_path: Path
) -> None:
    target = table.rename(columns={"alcohol": "y"}).drop(columns=["label"])
    target.to_csv(tmp_path / "reg.csv", index=False)
    source = DataSource.of(RegressorKnobs(data_path=str(tmp_path / "reg.csv"), label_column="y"))
    splits = split_arrays(load_arrays(source, "regression"), "regression")
    assert splits.num_classes == 0
    assert abs(float(splits.train.labels.mean())) < 1e-5
    assert splits.target_std == pytest.approx(
        float(np.std(splits.train.labels * splits.target_std + splits.target_mean)), rel=1e-4
    )


# How to make the bad file in a folder from the good table, the knobs, the error's key and
# what its problem says.
BadCase = tuple[Callable[[Path, pd.DataFrame], str], dict[str, object], str, str]

BAD_CASES: dict[str, BadCase] = {
    "missing-file": (
        lambda folder, frame: str(folder / "absent.csv"),
        {},
        "config.data_path",
        "absent.csv: file not found",
    ),
    "missing-label-column": (
        lambda folder, frame: _csv(folder, frame.drop(columns=["label"])),
        {},
        "config.label_column",
        "'label' is not a column of",
    ),
    "nan-values": (
        lambda folder, frame: _csv(folder, _with_nan(frame, rows=[3, 8])),
        {},
        "config.data_path",
        "2 rows with NaN or infinite values (lines 5, 10)",
    ),
    "nan-values-npz": (  # no lines in an .npz: its rows, counted from 1
        lambda folder, frame: _npz(
            folder,
            _with_nan(frame, rows=[3, 8]).drop(columns=["label"]).to_numpy(np.float32),
            frame["label"].to_numpy(),
        ),
        {},
        "config.data_path",
        "2 rows with NaN or infinite values (rows 4, 9)",
    ),
    "empty-column": (  # all NaN: one column to drop or fill, not "178 rows with NaN"
        lambda folder, frame: _csv(folder, frame.assign(magnesium=np.nan)),
        {},
        "config.data_path",
        "feature column magnesium holds no numbers (empty, NaN or infinite in all 178 rows)",
    ),
    "empty-columns": (
        lambda folder, frame: _csv(
            folder, frame.assign(alcohol=np.nan, ash=np.inf, hue=np.nan, proline=np.nan)
        ),
        {},
        "config.data_path",
        "feature columns alcohol, ash, hue, and 1 more hold no numbers",
    ),
    "empty-column-npz": (
        lambda folder, frame: _npz(
            folder,
            frame.assign(ash=np.nan).drop(columns=["label"]).to_numpy(np.float32),
            frame["label"].to_numpy(),
        ),
        {},
        "config.data_path",
        "feature column features[:, 2] holds no numbers",
    ),
    "wrong-shapes": (
        lambda folder, frame: _npz(folder, np.zeros((10, 4), np.float32), np.zeros(9)),
        {},
        "config.data_path",
        "got (10, 4) and (9,)",
    ),
    "text-feature": (
        lambda folder, frame: _csv(folder, frame.assign(colour="red")),
        {},
        "config.data_path",
        "feature columns must be numeric: colour",
    ),
    "one-class": (
        lambda folder, frame: _csv(folder, frame.assign(label=1)),
        {},
        "config.data_path",
        "one class only",
    ),
    "a-class-with-one-row": (
        lambda folder, frame: _csv(folder, _one_row_of_class(frame)),
        {},
        "config.data_path",
        "each class needs at least 3 rows (train, validation, test); too few: 7 (1 row)",
    ),
    "no-feature-column": (
        lambda folder, frame: _csv(folder, frame[["label"]]),
        {},
        "config.data_path",
        "no feature columns besides 'label'",
    ),
    "npz-of-objects": (
        lambda folder, frame: _npz(folder, np.array([[1, "a"]] * 20, dtype=object), np.zeros(20)),
        {},
        "config.data_path",
        "not a readable .npz",
    ),
    "npz-that-is-not-a-zip": (
        lambda folder, frame: _bytes(folder / "data.npz", b"features,label\n1,2\n"),
        {},
        "config.data_path",
        "not a readable .npz",
    ),
    "csv-of-zeros": (  # a sparse file: pandas took 11 GB for 300 MB of NULs
        lambda folder, frame: _bytes(folder / "data.csv", bytes(4096)),
        {},
        "config.data_path",
        "data.csv: not a UTF-8 text CSV (a NUL byte at byte 0: binary or UTF-16?)",
    ),
    "csv-without-a-header-line": (
        lambda folder, frame: _bytes(folder / "data.csv", b"a" * (2 << 20)),
        {},
        "config.data_path",
        "its first line is over 1,048,576 bytes, too long to be a CSV header",
    ),
    "csv-of-a-header-only": (  # its columns read as text: "must be numeric" misled
        lambda folder, frame: _csv(folder, frame.iloc[:0]),
        {},
        "config.data_path",
        "data.csv: no rows, only a header",
    ),
    "unknown-suffix": (
        lambda folder, frame: str(folder / "wine.xlsx"),
        {},
        "config.data_path",
        "use a .csv, .parquet, .npz file",
    ),
}


def _one_row_of_class(frame: pd.DataFrame) -> pd.DataFrame:
    with_seven = frame.copy()
    with_seven.loc[0, "label"] = 7  # wine has classes 0, 1, 2: class 7 has one row
    return with_seven


def _bytes(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _with_nan(frame: pd.DataFrame, rows: list[int]) -> pd.DataFrame:
    broken = frame.copy()
    broken.loc[rows, "alcohol"] = np.nan
    return broken


def _csv(folder: Path, frame: pd.DataFrame) -> str:
    frame.to_csv(folder / "data.csv", index=False)
    return str(folder / "data.csv")


def _npz(folder: Path, features: np.ndarray, labels: np.ndarray) -> str:
    np.savez(folder / "data.npz", features=features, label=labels)
    return str(folder / "data.npz")


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_data_is_one_clear_error(case: str, table: pd.DataFrame, tmp_path: Path) -> None:
    make, knobs, key, problem = BAD_CASES[case]
    location = make(tmp_path, table)
    with pytest.raises(DataError) as caught:
        load(location, **knobs)
    assert caught.value.key == key
    assert problem in caught.value.problem


def write_classifier_sweep(folder: Path, name: str, data_path: str) -> None:
    """`folder/sweep.yaml`: the built-in classifier on the data at `data_path`."""
    spec = {
        "name": name,
        "trainable": "builtin:classifier",
        "metric": "val_accuracy",
        "mode": "max",
        "params": {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        "config": {"data_path": data_path},
    }
    (folder / "sweep.yaml").write_text(yaml.safe_dump(spec))


def test_validate_checks_the_data_file_before_anything_runs(
    table: pd.DataFrame, tmp_path: Path
) -> None:
    location = _csv(tmp_path, table.drop(columns=["label"]))
    write_classifier_sweep(tmp_path, "user-csv", location)
    out = run_cli("validate", "sweep.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: sweep.yaml: config.label_column: 'label' is not a column of {location} "
        "(alcohol, malic_acid, ash, alcalinity_of_ash, magnesium, total_phenols, flavanoids, "
        "nonflavanoid_phenols, proanthocyanins, color_intensity, hue, "
        "od280/od315_of_diluted_wines, proline)"
    ]


def test_validate_names_a_feature_column_without_numbers(
    table: pd.DataFrame, tmp_path: Path
) -> None:
    """A column left empty in the CSV: the line names it, not every row of the file."""
    frame = table.astype({"hue": object}).assign(hue="")
    location = _csv(tmp_path, frame)
    header, first = Path(location).read_text().splitlines()[:2]
    assert (header.split(",")[10], first.split(",")[10]) == ("hue", "")
    write_classifier_sweep(tmp_path, "empty-hue", location)
    out = run_cli("validate", "sweep.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: sweep.yaml: config.data_path: {location}: feature column hue holds no "
        "numbers (empty, NaN or infinite in all 178 rows)"
    ]


def test_a_header_of_huge_names_is_cut_to_one_short_line(tmp_path: Path) -> None:
    """A column name is the user's data, of any length: the line listing the columns
    once carried a 30 MB name whole."""
    names = ["x" * 100_000, *(f"c{i}" for i in range(30))]
    location = _bytes(tmp_path / "data.csv", (",".join(names) + "\n" + "1," * 30 + "1\n").encode())
    with pytest.raises(DataError) as caught:
        load(location)
    assert caught.value.key == "config.label_column"
    listed = ", ".join(["x" * 37 + "...", *(f"c{i}" for i in range(19))])
    assert caught.value.problem.endswith(f"({listed}, and 11 more)")
    assert len(caught.value.problem) < 400


@pytest.mark.parametrize("suffix", ["npz", "parquet"])
def test_compressed_data_too_big_to_hold_is_refused_before_it_is_decompressed(
    suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """500 KB of compressed zeros held 400 MB at validate, and every trial held it too;
    the cap image folders had (4 GiB of float32) now holds for every file, read from
    the file's own header before its arrays are."""
    import tuner.trainer.data_files

    rows = 50_000
    features = np.zeros((rows, 4))
    if suffix == "npz":
        location = str(tmp_path / "zeros.npz")
        np.savez_compressed(location, features=features, label=np.arange(rows) % 2)
    else:
        location = str(tmp_path / "zeros.parquet")
        pd.DataFrame(features).rename(columns=str).assign(label=np.arange(rows) % 2).to_parquet(
            location
        )
    monkeypatch.setattr(tuner.trainer.data_files, "MAX_FEATURE_BYTES", rows * 5 * 4 - 1)
    with pytest.raises(DataError) as caught:
        load(location)
    assert caught.value.key == "config.data_path"
    assert f"holds {rows * 5:,} values" in caught.value.problem
    monkeypatch.setattr(tuner.trainer.data_files, "MAX_FEATURE_BYTES", rows * 5 * 4)
    assert load(location).features.shape == (rows, 4)
