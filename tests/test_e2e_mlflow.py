"""`tuner run` end to end against a real `mlflow server` (on SQLite, and on PostgreSQL as
the infra's head node runs it), checked as a user browses it."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.entities import Run

from bench.servers import free_port
from tests.conftest import run_cli
from tuner.trainer.data import load_splits
from tuner.trainer.knobs import ClassifierKnobs

pytestmark = pytest.mark.e2e

NAME = "e2e-tpe-asha"
EPOCHS = 9
NUM_SAMPLES = 6
SEARCHED = ["lr", "hidden", "optimizer"]
METRICS = ["train_loss", "val_loss", "val_accuracy"]
SPEC = {
    "name": NAME,
    "trainable": "builtin:classifier",
    "metric": "val_accuracy",
    "mode": "max",
    "num_samples": NUM_SAMPLES,
    "searcher": {"kind": "optuna", "sampler": "tpe", "seed": 0},
    "scheduler": {"kind": "asha", "max_t": EPOCHS, "grace_period": 1, "reduction_factor": 3},
    "max_concurrent_trials": 2,
    "params": {
        "lr": {"type": "float", "low": 1e-4, "high": 0.3, "log": True},
        "hidden": {"type": "int", "low": 8, "high": 64, "log": True},
        "optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
    },
    "config": {"epochs": EPOCHS, "dropout": 0.1},
}


@dataclass
class Sweep:
    process: subprocess.CompletedProcess[str]
    client: MlflowClient
    tracking_uri: str
    workdir: Path
    parent: Run
    children: list[Run]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def sweep(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    """The sweep through a server on SQLite, and on PostgreSQL as the infra's head runs it."""
    fixture = "mlflow_server" if request.param == "sqlite" else "mlflow_server_on_postgres"
    mlflow_server = str(request.getfixturevalue(fixture))
    workdir = tmp_path_factory.mktemp("e2e")
    spec_path = workdir / "sweep.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC))
    process = run_cli(
        "run", str(spec_path), "--tracking-uri", mlflow_server, "--storage", str(workdir / "runs"),
        cwd=workdir,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name(NAME)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("tuner.role") == "sweep"]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    return Sweep(process, client, mlflow_server, workdir, parents[0], children)


def history(sweep: Sweep, run: Run, metric: str) -> list[int]:
    return [m.step for m in sweep.client.get_metric_history(run.info.run_id, metric)]


def test_one_parent_run_per_sweep_with_its_spec(sweep: Sweep) -> None:
    parent = sweep.parent
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["tuner.searcher"] == "optuna:tpe"
    assert parent.data.tags["tuner.scheduler"] == "asha"
    assert parent.data.params["config.epochs"] == str(EPOCHS)
    spec_files = [a.path for a in sweep.client.list_artifacts(parent.info.run_id, "spec")]
    assert spec_files == ["spec/sweep.yaml"]


def test_one_child_run_per_trial_with_params_logged_once(sweep: Sweep) -> None:
    assert len(sweep.children) == NUM_SAMPLES
    assert len({r.data.tags["tuner.trial_id"] for r in sweep.children}) == NUM_SAMPLES
    for run in sweep.children:
        assert sorted(run.data.params) == sorted(SEARCHED)


def test_every_epoch_logged_once_with_its_step(sweep: Sweep) -> None:
    for run in sweep.children:
        steps = history(sweep, run, "val_accuracy")
        assert steps == list(range(1, len(steps) + 1)), run.info.run_name
        for metric in METRICS:
            assert history(sweep, run, metric) == steps


def test_asha_stopped_trials_are_marked_and_finished_trials_ran_every_epoch(sweep: Sweep) -> None:
    statuses = {run.info.status for run in sweep.children}
    assert statuses <= {"FINISHED", "KILLED"}
    killed = [run for run in sweep.children if run.info.status == "KILLED"]
    assert killed, "with 6 trials and reduction factor 3, ASHA stops at least one"
    for run in sweep.children:
        epochs = len(history(sweep, run, "val_accuracy"))
        if run.info.status == "KILLED":
            assert run.data.tags["tuner.stopped_early"] == "asha"
            assert run.data.tags["tuner.stopped_at_epoch"] == str(epochs)
            assert epochs < EPOCHS
        else:
            assert "tuner.stopped_early" not in run.data.tags
            assert epochs == EPOCHS
    assert f"{len(killed)} stopped early by ASHA" in sweep.process.stdout
    # Without a terminal, each trial's end is one line (the live table needs a TTY).
    lines = [line for line in sweep.process.stdout.splitlines() if line.startswith("trial ")]
    assert len(lines) == NUM_SAMPLES
    assert sum("stopped early (asha) at epoch" in line for line in lines) == len(killed)
    assert sum(f"finished at epoch {EPOCHS}:" in line for line in lines) == NUM_SAMPLES - len(
        killed
    )


def test_best_model_is_logged_and_scores_what_the_trial_reported(sweep: Sweep) -> None:
    best_run_id = sweep.parent.data.tags["tuner.best_run_id"]
    best = sweep.client.get_run(best_run_id)
    finals = [r.data.metrics["val_accuracy"] for r in sweep.children]
    assert best.data.metrics["val_accuracy"] == max(finals)
    assert sweep.parent.data.metrics["best_val_accuracy"] == max(finals)

    artifacts = {a.path for a in sweep.client.list_artifacts(best_run_id, "model")}
    assert "model/MLmodel" in artifacts
    local = sweep.client.download_artifacts(best_run_id, "model", str(sweep.workdir))
    model = mlflow.pyfunc.load_model(local)
    # A user's raw rows, as in the data: the model standardizes them itself.
    splits = load_splits(ClassifierKnobs(), "classification")
    val = splits.val
    raw = val.features * splits.feature_std + splits.feature_mean
    predictions = model.predict(raw).argmax(axis=1)
    accuracy = float((predictions == val.labels).mean())
    assert accuracy == pytest.approx(best.data.metrics["val_accuracy"], abs=1e-6)


def test_tuner_best_agrees_with_mlflow(sweep: Sweep) -> None:
    out = run_cli("best", NAME, "--tracking-uri", sweep.tracking_uri, "--json", cwd=sweep.workdir)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    best = sweep.client.get_run(sweep.parent.data.tags["tuner.best_run_id"])
    assert report["run_id"] == best.info.run_id
    assert report["value"] == best.data.metrics["val_accuracy"]
    # Typed as the trial had them (MLflow keeps strings): a script gets numbers.
    assert {name: str(value) for name, value in report["params"].items()} == best.data.params
    assert isinstance(report["params"]["lr"], float)
    assert isinstance(report["params"]["hidden"], int)
    assert report["checkpoint"] == best.data.tags["tuner.checkpoint"]
    assert Path(report["checkpoint"], "state.pt").is_file()

    text = run_cli("best", str(sweep.workdir / "sweep.yaml"), "--tracking-uri", sweep.tracking_uri,
                   cwd=sweep.workdir)  # fmt: skip
    assert text.returncode == 0
    assert f"val_accuracy = {best.data.metrics['val_accuracy']:.6g}" in text.stdout


def test_unreachable_tracking_server_fails_fast_with_one_line(tmp_path: Path) -> None:
    spec_path = tmp_path / "sweep.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC))
    dead = f"http://127.0.0.1:{free_port()}"
    out = run_cli("run", str(spec_path), "--tracking-uri", dead, cwd=tmp_path, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"error: MLflow tracking server {dead} unreachable: [Errno 111] Connection refused"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]
