"""A new SQLite store is a copy of a blank one MLflow built once, and MLflow takes it as
its own: same tables, same schema version, its Default experiment in this folder."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tuner.tracking.blank_store import blank_store_name, cache_folder, place_blank_store
from tuner.tracking.first_use import store_opened_alone


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "tuner"


def tables(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}


def schema_version(database: Path) -> str:
    with sqlite3.connect(database) as connection:
        ((version,),) = connection.execute("SELECT version_num FROM alembic_version")
        return str(version)


def test_a_new_store_is_the_blank_copy_and_mlflow_opens_it_as_its_own(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    with store_opened_alone("sqlite:///mlflow.db"):
        client = MlflowClient("sqlite:///mlflow.db")
        client.create_experiment("sweep")
    assert cache_folder() == cache
    blank = cache / blank_store_name()
    assert blank.is_file()
    # MLflow built the blank one (tables, migrations) and nothing else: no experiment.
    with sqlite3.connect(blank) as connection:
        assert connection.execute("SELECT COUNT(*) FROM experiments").fetchone() == (0,)
    store = project / "mlflow.db"
    assert tables(store) == tables(blank) and "runs" in tables(store)
    assert schema_version(store) == schema_version(blank)
    # MLflow added its Default experiment to the copy, with this folder's location.
    default = client.get_experiment("0")
    assert default.name == "Default"
    assert default.artifact_location == str(project / "mlruns" / "0")
    assert client.get_experiment_by_name("sweep") is not None
    assert not [p.name for p in project.iterdir() if p.name.startswith(".mlflow.db.")]


def test_a_store_already_there_is_never_replaced(tmp_path: Path, cache: Path) -> None:
    store = tmp_path / "mlflow.db"
    MlflowClient(f"sqlite:///{store}").create_experiment("kept")
    assert not place_blank_store(store)
    assert MlflowClient(f"sqlite:///{store}").get_experiment_by_name("kept") is not None
    assert not cache.exists()  # nothing built for a store that needed nothing


def test_a_cache_that_cannot_be_written_leaves_the_store_to_mlflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(not_a_folder))
    store = tmp_path / "mlflow.db"
    assert not place_blank_store(store)
    assert not store.exists()
    with store_opened_alone(f"sqlite:///{store}"):
        client = MlflowClient(f"sqlite:///{store}")
    assert client.get_experiment_by_name("Default") is not None
