"""A persistent Optuna study: `searcher: {kind: optuna, storage: URL}`."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import run_cli
from tuner.search.persistent_study import StudyStorage
from tuner.spec import SpecError, parse_spec
from tuner.tracking.tags import TAG_PARENT, TAG_TRIAL_ID


def sweep(storage: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "kept",
        "trainable": "tests.trainables:one_param_matters",
        "metric": "score",
        "mode": "max",
        "num_samples": 4,
        "searcher": {"kind": "optuna", "seed": 0, "storage": storage},
        "max_concurrent_trials": 2,
        "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "config": {"epochs": 2},
        **extra,
    }


@pytest.mark.parametrize(
    ("storage", "problem"),
    [
        (
            "postgresql://tuner:hunter2@db.internal/optuna",
            "holds a password, which tuner would write to MLflow with the sweep file: "
            "write ${env:NAME} in its place",
        ),
        (
            "optuna.db",
            "'optuna.db' is not a database URL "
            "(sqlite:///optuna.db, postgresql://user@host/db, ...)",
        ),
        ("sqlite:///${env:DIR/optuna.db", "${env:DIR/optuna.db is not an ${env:NAME} reference"),
        (  # a driver takes a password in the query too: it was not refused
            "postgresql://tuner@db.internal/optuna?sslmode=require&password=hunter2",
            "holds a password, which tuner would write to MLflow with the sweep file: "
            "write ${env:NAME} in its place",
        ),
    ],
)
def test_a_storage_url_tuner_cannot_keep_is_one_line(storage: str, problem: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(sweep(storage), "sweep.yaml")
    assert str(raised.value) == f"sweep.yaml: searcher.storage: {problem}"
    assert "hunter2" not in str(raised.value)


def test_a_password_from_the_environment_in_the_query_is_not_printed(tmp_path: Path) -> None:
    """`?password=${env:PW}` passed validation rightly, but the line saying the database
    did not open printed the URL with the password filled in."""
    storage = "postgresql+psycopg://tuner@127.0.0.1:1/optuna?password=${env:STUDY_PW}"
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep(storage)))
    done = run_cli("run", "sweep.yaml", cwd=tmp_path, env={"STUDY_PW": "s3cret-pw"}, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith(
        "error: sweep.yaml: searcher.storage: cannot open "
        "postgresql+psycopg://tuner@127.0.0.1:1/optuna?password=***: "
    )
    assert "s3cret-pw" not in done.stdout + done.stderr


def test_the_saved_searcher_keeps_the_url_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray pickles the study with the searcher onto the sweep's storage: what the
    environment supplied (a password, here a folder) stays out of it."""
    monkeypatch.setenv("STUDY_FOLDER", str(tmp_path / "private-folder"))
    (tmp_path / "private-folder").mkdir()
    storage = StudyStorage("sqlite:///${env:STUDY_FOLDER}/optuna.db")
    study = optuna.create_study(storage=storage, study_name="s")
    study.enqueue_trial({"x": 0.5})
    saved = pickle.dumps(study)
    assert b"private-folder" not in saved and b"${env:STUDY_FOLDER}" in saved
    restored = pickle.loads(saved)
    assert len(restored.trials) == 1


def trial_runs(tracking_uri: str, name: str) -> list[Any]:
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    return [
        run for run in client.search_runs([experiment.experiment_id]) if TAG_PARENT in run.data.tags
    ]


@pytest.mark.e2e
def test_the_study_is_kept_and_later_runs_learn_from_it(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep("sqlite:///optuna.db")))
    first = run_cli("run", "sweep.yaml", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Optuna study 'kept' in sqlite:///optuna.db: new" in first.stdout

    # What optuna-dashboard reads: the study, its trials named as in MLflow.
    study = optuna.load_study(study_name="kept", storage=storage)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    runs = {
        run.data.tags[TAG_TRIAL_ID]: run
        for run in trial_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "kept")
    }
    assert len(study.trials) == 4
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        run = runs[trial.user_attrs["trial_id"]]
        assert trial.value == pytest.approx(run.data.metrics["score"])
        assert trial.params["x"] == pytest.approx(float(run.data.params["x"]))

    # A driver that died mid-sweep leaves a trial running in the study.
    study.ask()
    second = run_cli("run", "sweep.yaml", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert (
        "Optuna study 'kept' in sqlite:///optuna.db: the sampler learns from its 4 earlier "
        "trials; 1 an earlier run left unfinished marked failed"
    ) in second.stdout
    states = [trial.state for trial in optuna.load_study(study_name="kept", storage=storage).trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 8
    assert states.count(optuna.trial.TrialState.FAIL) == 1

    (tmp_path / "min.yaml").write_text(yaml.safe_dump(sweep("sqlite:///optuna.db", mode="min")))
    refused = run_cli("run", "min.yaml", cwd=tmp_path, timeout=120)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "error: min.yaml: searcher.storage: the study 'kept' in sqlite:///optuna.db is to "
        "maximize, this sweep to minimize: rename the sweep or use another storage"
    )


@pytest.mark.e2e
def test_a_study_on_postgresql_keeps_its_password_out_of_every_file(
    tmp_path: Path, postgres_uri: str
) -> None:
    """As on a cluster: the study in PostgreSQL, its password from the environment.
    (The throw-away server trusts every login, so any password opens it.)"""
    from bench.servers import new_database

    database = new_database(postgres_uri, "optuna_study")
    user, host = database.split("://", 1)[1].split("@", 1)
    url = f"postgresql+psycopg://{user}:${{env:STUDY_DB_PASSWORD}}@{host}"
    password = "s3cret-study-password"
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep(url)))
    result = run_cli("run", "sweep.yaml", cwd=tmp_path, env={"STUDY_DB_PASSWORD": password})
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="kept", storage=database)
    assert len(study.trials) == 4
    assert password not in result.stdout + result.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path
