"""A built-in trainer's data is loaded once per sweep, by the driver: no trial process
generates or reads the data set again (counted in every Ray worker process)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bench.common import python_path
from tests.data_loads import LOADS_FILE
from tuner.engine.runner import RunOptions, run_sweep
from tuner.engine.shared_data import SharedData
from tuner.spec import parse_spec

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def loads_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Embedded Ray whose every worker process counts its data loads into a file."""
    import ray

    loads = tmp_path_factory.mktemp("loads") / "loads.txt"
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={
            "env_vars": {"PYTHONPATH": python_path(), LOADS_FILE: str(loads)},
            "worker_process_setup_hook": "tests.data_loads.count_loads",
        },
    )
    yield loads
    ray.shutdown()


def sweep(params: dict[str, Any]) -> dict[str, Any]:
    data = {"dataset": "synthetic", "synthetic_samples": 400, "synthetic_features": 8}
    return {
        "name": "shared-data",
        "trainable": "builtin:classifier",
        "metric": "val_accuracy",
        "mode": "max",
        "searcher": {"kind": "grid"},
        "max_concurrent_trials": 2,
        "params": params,
        "config": {
            key: value
            for key, value in {**data, "hidden": 16, "epochs": 2}.items()
            if key not in params
        },
    }


def run(raw: dict[str, Any], tmp_path: Path) -> float:
    result = run_sweep(
        parse_spec(raw),
        RunOptions(
            tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
            storage=str(tmp_path / "runs"),
            console=Console(file=io.StringIO()),
        ),
    )
    assert result.best is not None
    return result.best.value


def loads_in_workers(loads: Path) -> int:
    return len(loads.read_text().splitlines()) if loads.exists() else 0


def test_no_trial_loads_the_data_the_sweep_fixed(loads_file: Path, tmp_path: Path) -> None:
    loads_file.unlink(missing_ok=True)
    grid = {"lr": {"type": "grid", "values": [0.01, 0.03, 0.1]}}
    best = run(sweep(grid), tmp_path)
    assert best > 0.5  # the trials trained on the real data set, handed over
    assert loads_in_workers(loads_file) == 0


def test_trials_that_search_the_data_load_their_own(loads_file: Path, tmp_path: Path) -> None:
    # The counter's control: each trial's data differs, so each trial loads it.
    loads_file.unlink(missing_ok=True)
    grid = {"synthetic_samples": {"type": "grid", "values": [300, 400]}}
    run(sweep(grid), tmp_path)
    assert loads_in_workers(loads_file) == 2


def test_the_sweep_shares_each_fold_count_it_may_train(loads_file: Path) -> None:
    searched = {
        "cv_folds": {"type": "categorical", "choices": [2, 3]},
        "lr": {"type": "float", "low": 0.01, "high": 0.1},
    }
    shared = SharedData.of(parse_spec({**sweep(searched), "searcher": {"kind": "random"}}))
    assert shared is not None
    # 1: no folds, which the test score and a checkpoint's model use.
    assert sorted(folds for _, _, folds in shared.keys) == [1, 2, 3]


def test_a_sweep_searching_the_data_shares_none(loads_file: Path) -> None:
    searched = {"dataset": {"type": "categorical", "choices": ["digits", "wine"]}}
    raw = {**sweep(searched), "searcher": {"kind": "random"}}
    assert SharedData.of(parse_spec(raw)) is None
