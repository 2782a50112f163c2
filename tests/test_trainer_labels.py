"""A label column as users have them: text with an empty cell, a regressor pointed at text.

Each once ended `tuner validate` in numpy's traceback (`'<' not supported between
instances of 'float' and 'str'`; `could not convert string to float: 'barolo'`); each
is one line naming the file, the key and the rows or values now.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import run_cli
from tuner.trainer.data import DataError, DataSource, load_arrays
from tuner.trainer.knobs import ClassifierKnobs, RegressorKnobs


def cultivars(rows: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "alcohol": rng.normal(13, 1, rows),
            "hue": rng.normal(1, 0.2, rows),
            "cultivar": np.array(["barolo", "grignolino", "barbera"])[np.arange(rows) % 3],
        }
    )


def validate(folder: Path, trainable: str, data: pd.DataFrame) -> list[str]:
    data.to_csv(folder / "wine.csv", index=False)
    spec = {
        "name": "labels",
        "trainable": f"builtin:{trainable}",
        "metric": "val_accuracy" if trainable == "classifier" else "val_rmse",
        "mode": "max" if trainable == "classifier" else "min",
        "params": {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        "config": {"data_path": "wine.csv", "label_column": "cultivar", "epochs": 1},
    }
    (folder / "sweep.yaml").write_text(yaml.safe_dump(spec))
    out = run_cli("validate", "sweep.yaml", cwd=folder)
    assert out.returncode == 2, out.stdout
    return out.stderr.strip().splitlines()


def test_text_labels_with_an_empty_cell_name_the_rows_without_a_label(tmp_path: Path) -> None:
    data = cultivars()
    data.loc[[4, 17], "cultivar"] = None  # written as empty cells
    assert validate(tmp_path, "classifier", data) == [
        "error: sweep.yaml: config.data_path: wine.csv: 2 rows without a label in "
        "'cultivar' (lines 6, 19)"
    ]
    # The lines the user opens in an editor (line 1 is the header) are the unlabelled ones.
    lines = (tmp_path / "wine.csv").read_text().splitlines()
    assert [lines[n - 1].endswith(",") for n in (6, 19)] == [True, True]
    assert sum(line.endswith(",") for line in lines) == 2


def test_a_regressor_on_a_text_column_says_its_target_must_be_numbers(tmp_path: Path) -> None:
    assert validate(tmp_path, "regressor", cultivars()) == [
        "error: sweep.yaml: config.label_column: wine.csv: the regressor's target 'cultivar' "
        "must hold numbers; it holds 'barolo', 'grignolino', 'barbera' "
        "(class labels are for builtin:classifier)"
    ]


def test_a_trial_reading_the_file_whole_says_the_same(tmp_path: Path) -> None:
    """A .parquet is read whole (no scan): its checks are the same function's."""
    data = cultivars()
    data.loc[[4], "cultivar"] = None
    data.to_parquet(tmp_path / "wine.parquet")
    knobs = ClassifierKnobs(data_path=str(tmp_path / "wine.parquet"), label_column="cultivar")
    with pytest.raises(DataError, match=r"1 rows without a label in 'cultivar' \(row 5\)"):
        load_arrays(DataSource.of(knobs), "classification")
    regressor = RegressorKnobs(data_path=str(tmp_path / "wine.parquet"), label_column="cultivar")
    with pytest.raises(DataError, match="the regressor's target 'cultivar' must hold numbers"):
        load_arrays(DataSource.of(regressor), "regression")


def test_an_integer_target_trains_the_regressor(tmp_path: Path) -> None:
    """An int column (prices in cents, counts) is a target like any other."""
    data = cultivars().assign(cultivar=np.arange(30) * 3)
    data.to_csv(tmp_path / "counts.csv", index=False)
    knobs = RegressorKnobs(data_path=str(tmp_path / "counts.csv"), label_column="cultivar")
    arrays = load_arrays(DataSource.of(knobs), "regression")
    assert arrays.labels.dtype == np.float32
    assert arrays.labels.tolist() == (np.arange(30) * 3).tolist()
