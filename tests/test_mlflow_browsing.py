"""A sweep as MLflow 3's UI shows it: a model-training experiment, the best model as a
logged model (and a registry version with @best), trial runs named by their values, the
sweep run's description."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import run_cli
from tuner.engine.trainables import dataset_of
from tuner.spec import SpecError, parse_spec
from tuner.tracking.first_use import EXPERIMENT_KIND_TAG, MODEL_TRAINING, experiment_id_for
from tuner.tracking.registry import register_best
from tuner.tracking.results import run_name
from tuner.trainer.data import load_splits
from tuner.trainer.knobs import ClassifierKnobs


def test_a_kind_the_user_gave_is_kept(tmp_path: Path) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mine = client.create_experiment("mine", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    assert experiment_id_for(client, "mine", None) == mine
    assert client.get_experiment(mine).tags[EXPERIMENT_KIND_TAG] == "genai_development"
    plain = client.create_experiment("plain")  # made before tuner marked its experiments
    experiment_id_for(client, "plain", None)
    assert client.get_experiment(plain).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
    fresh = experiment_id_for(client, "fresh", None)
    assert client.get_experiment(fresh).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING


def test_trial_runs_are_named_by_their_first_values() -> None:
    params = {"lr": "0.0013872", "hidden": "27", "optimizer": "adam"}
    assert run_name("5fb07bec", params) == "5fb07bec lr=0.001387 hidden=27"
    assert run_name("5fb07bec", {}) == "5fb07bec"


def sweep_on(**extra: Any) -> Any:
    return parse_spec(
        {
            "name": "s",
            "trainable": "builtin:classifier",
            "metric": "val_accuracy",
            "mode": "max",
            **extra,
            "params": extra.get("params", {"lr": {"type": "float", "low": 0.01, "high": 0.1}}),
        }
    )


def test_two_datasets_are_told_apart_by_digest() -> None:
    digits = dataset_of(sweep_on())
    wine = dataset_of(sweep_on(config={"dataset": "wine"}))
    assert digits is not None and wine is not None
    assert (digits["name"], wine["name"]) == ("digits", "wine")
    assert digits["digest"] != wine["digest"]
    assert dataset_of(sweep_on()) == digits  # the same data, the same digest
    searched = {"dataset": {"type": "categorical", "choices": ["digits", "wine"]}}
    assert dataset_of(sweep_on(params=searched)) is None  # each trial's data differs


def test_register_needs_a_built_in_trainer() -> None:
    with pytest.raises(SpecError, match="register: needs a built-in trainer"):
        parse_spec(
            {
                "name": "s",
                "trainable": "tests.trainables:report_twice",
                "metric": "score",
                "mode": "max",
                "register": "digits",
                "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
            }
        )


def test_best_moves_only_to_a_better_version(tmp_path: Path) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("e")

    def version(value: float, mode: str = "max", metric: str = "val_accuracy") -> str:
        run = client.create_run(experiment)
        model = client.create_logged_model(experiment, name="model", source_run_id=run.info.run_id)
        return register_best(
            client, "digits", model.model_id, run.info.run_id,
            metric=metric, mode=mode, value=value,
        )  # fmt: skip

    assert version(0.90) == "registered model 'digits' version 1, now @best (val_accuracy 0.9)"
    assert version(0.85) == (
        "registered model 'digits' version 2; @best stays on version 1 "
        "(val_accuracy 0.9, this sweep 0.85)"
    )
    assert version(0.95) == "registered model 'digits' version 3, now @best (val_accuracy 0.95)"
    assert version(0.2, mode="min", metric="val_loss") == (
        "registered model 'digits' version 4; @best stays on version 3, which was not judged "
        "on val_loss (min)"
    )
    assert str(client.get_model_version_by_alias("digits", "best").version) == "3"


def write_small_sweep(path: Path, name: str) -> None:
    """Two trials of the built-in classifier on digits, two epochs each."""
    spec = {
        "name": name,
        "trainable": "builtin:classifier",
        "metric": "val_accuracy",
        "mode": "max",
        "num_samples": 2,
        "max_concurrent_trials": 2,
        "params": {"lr": {"type": "float", "low": 0.01, "high": 0.1, "log": True}},
        "config": {"epochs": 2},
    }
    path.write_text(yaml.safe_dump(spec))


@pytest.mark.e2e
def test_a_sweep_shows_as_model_training_with_its_model(tmp_path: Path) -> None:
    write_small_sweep(tmp_path / "sweep.yaml", "browsed")
    result = run_cli("run", "sweep.yaml", "--register", "digits-mlp", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "registered model 'digits-mlp' version 1, now @best (val_accuracy " in result.stdout

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("browsed")
    assert experiment is not None
    assert experiment.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
    runs = client.search_runs([experiment.experiment_id])
    parent = next(run for run in runs if run.data.tags.get("tuner.role") == "sweep")
    trials = [run for run in runs if run.data.tags.get("tuner.role") == "trial"]
    for trial in trials:
        assert trial.info.run_name.startswith(trial.data.tags["tuner.trial_id"] + " lr=")
        # The Dataset column: the data each trial trained on, its splits in the profile.
        assert trial.inputs is not None
        (used,) = trial.inputs.dataset_inputs
        assert used.dataset.name == "digits" and used.dataset.source_type == "code"
        assert used.dataset.profile is not None
        splits = json.loads(used.dataset.profile)["splits"]
        assert sum(splits.values()) == 1797 and splits["train"] > splits["val"]
        assert {tag.key: tag.value for tag in used.tags}["mlflow.data.context"] == "training"
    assert parent.inputs is not None
    (used,) = parent.inputs.dataset_inputs  # the sweep's row shows its data too
    assert used.dataset.name == "digits"
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith("random search, fifo scheduler: 2 trials, 2 finished, 0 stopped")
    best_run = parent.data.tags["tuner.best_run_id"]

    (model,) = client.search_logged_models(experiment_ids=[experiment.experiment_id])
    assert model.source_run_id == best_run and str(model.status) in (
        "READY",
        "LoggedModelStatus.READY",
    )
    assert set(model.params) == {"lr"}
    linked = {metric.key for metric in model.metrics or []}
    assert {"test_accuracy", "test_loss"} <= linked
    # The trial's learning curve keeps one point per epoch: nothing added at its end.
    history = client.get_metric_history(best_run, "val_accuracy")
    assert [point.step for point in history] == [1, 2]
    best = client.get_run(best_run)
    assert best.outputs is not None
    assert model.model_id in {output.model_id for output in best.outputs.model_outputs}

    # Loads without tuner, by the model's id and by the registry's alias.
    # A user's raw rows, as in the data: the model standardizes them itself.
    splits = load_splits(ClassifierKnobs(), "classification")
    val = splits.val
    raw = val.features * splits.feature_std + splits.feature_mean
    mlflow.set_tracking_uri(uri)
    for source in (f"models:/{model.model_id}", "models:/digits-mlp@best"):
        predictions = mlflow.pyfunc.load_model(source).predict(raw)
        accuracy = float((np.asarray(predictions).argmax(axis=1) == val.labels).mean())
        assert accuracy == pytest.approx(best.data.metrics["val_accuracy"], abs=1e-6)


def rendered_text(browser: str, url: str, profile: Path) -> str:
    """The page's text once MLflow's UI has rendered it, as a user would read it."""
    from tests.test_report import CHROMIUM_FLAGS

    dumped = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
         "--virtual-time-budget=20000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    text = re.sub(r"<style.*?</style>|<script.*?</script>", " ", dumped.stdout, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text)))


@pytest.mark.e2e
@pytest.mark.parametrize("server", ["mlflow_server", "mlflow_server_on_postgres"])
def test_mlflow_s_ui_shows_the_runs_their_data_and_the_model(
    tmp_path: Path, server: str, request: pytest.FixtureRequest
) -> None:
    """On MLflow's default server (uvicorn, SQLite) and on the head's (gunicorn with
    tuner's configuration, PostgreSQL)."""
    mlflow_server: str = request.getfixturevalue(server)
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    write_small_sweep(tmp_path / "sweep.yaml", "seen-in-the-ui")
    done = run_cli("run", "sweep.yaml", "--tracking-uri", mlflow_server, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("seen-in-the-ui")
    assert experiment is not None
    page = f"{mlflow_server}/#/experiments/{experiment.experiment_id}"

    runs = rendered_text(browser, f"{page}/runs", tmp_path / "profile")
    assert "Training runs" in runs  # the model-training view, not GenAI traces
    # The sweep's row: its name, and its data in the Dataset column.
    assert "seen-in-the-ui" in runs and "digits" in runs

    models = rendered_text(browser, f"{page}/models", tmp_path / "profile")
    best = client.get_run(
        client.search_runs([experiment.experiment_id], "tags.`tuner.role` = 'sweep'")[0].data.tags[
            "tuner.best_run_id"
        ]
    )
    # The Models tab lists the best model, ready, logged from the best trial's run.
    assert "best_model Ready" in models
    assert best.info.run_name in models
