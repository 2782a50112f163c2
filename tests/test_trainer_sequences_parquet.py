"""Sequences in Parquet: one column per feature, each cell that feature's T steps, read
as (N, T, F) by gru, lstm and conv1d, the same arrays as the .npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.test_trainer_sequences import FEATURES, STEPS, pattern_sequences, train
from tuner.trainer.data import DataError, DataSource, load_arrays
from tuner.trainer.knobs import ClassifierKnobs


def write_parquet(path: Path, features: np.ndarray, labels: np.ndarray) -> Path:
    columns = {f"f{i}": list(features[:, :, i]) for i in range(features.shape[2])}
    pd.DataFrame({**columns, "label": labels}).to_parquet(path)
    return path


@pytest.fixture(scope="module")
def bumps(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    features, labels = pattern_sequences()
    path = write_parquet(tmp_path_factory.mktemp("parquet") / "bumps.parquet", features, labels)
    return path, features, labels


def arrays(path: Path, model: str = "gru") -> np.ndarray:
    knobs = ClassifierKnobs(data_path=str(path), model=model)  # type: ignore[arg-type]
    return load_arrays(DataSource.of(knobs), "classification").features


def test_list_columns_are_read_as_the_npz_would_be(
    bumps: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    path, features, _ = bumps
    loaded = arrays(path)
    assert loaded.shape == (len(features), STEPS, FEATURES)
    np.testing.assert_array_equal(loaded, features)


def test_a_gru_learns_from_parquet_sequences(bumps: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, _, _ = bumps
    metrics = train(path, model="gru", epochs=8)
    assert metrics[-1]["val_accuracy"] > 0.85  # chance is 0.5


def test_what_is_not_a_sequence_file_is_one_line(
    bumps: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    path, _, _ = bumps
    with pytest.raises(DataError, match="hold lists, which are sequences: use model gru"):
        arrays(path, model="mlp")
    mixed = pd.read_parquet(path).assign(age=1.0)
    mixed.to_parquet(tmp_path / "mixed.parquet")
    with pytest.raises(DataError, match="these hold single values: age"):
        arrays(tmp_path / "mixed.parquet")
    ragged = pd.read_parquet(path)
    ragged.at[3, "f1"] = ragged.at[3, "f1"][:-1]
    ragged.to_parquet(tmp_path / "ragged.parquet")
    with pytest.raises(DataError, match="the same number of numeric steps"):
        arrays(tmp_path / "ragged.parquet")
