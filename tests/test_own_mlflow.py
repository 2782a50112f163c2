"""A trainable that calls `mlflow.log_*` itself, as the single-run script it came from
did, run through the `tuner` command: its params, tags, metric points and artifacts
went to a SQLite store in the trial's temporary folder under Ray's session, and the
user found none of them in the sweep's MLflow. Now they land in the trial's run, also
for a trial ASHA stopped in the middle; code that points MLflow elsewhere itself is
told where its run went."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import mlflow
import mlflow.pytorch
import pytest
import torch
from mlflow.tracking._tracking_service import utils as tracking_utils

from tests.conftest import run_cli
from tests.test_user_code import trial_runs, write_sweep

TOKEN = "tok-" + secrets.token_hex(8)
OWN_MLFLOW_CODE = """
    import mlflow
    import mlflow.pytorch
    import numpy
    import torch
    from ray import tune

    mlflow.set_experiment("my-script")  # at import, as the script did: another store's id


    def fit(config):
        mlflow.log_param("layers", 3)  # as the single-run script did
        mlflow.log_param("x", config["x"])  # the searched value, logged again
        mlflow.set_tag("data_version", "v2")
        mlflow.log_param("api_token", config["api_token"])  # the whole config, as scripts do
        mlflow.set_tag("login", "token " + config["api_token"])
        mlflow.log_dict(config, "config.json")
        for epoch in range(1, 5):
            mlflow.log_metric("train_loss", config["x"] / epoch, step=epoch)
            if epoch == 2 and config["x"] == 1.0:  # the best trial's model, as scripts log it
                model = torch.nn.Linear(2, 1)
                torch.nn.init.constant_(model.weight, config["x"])
                example = numpy.zeros((1, 2), dtype=numpy.float32)
                mlflow.pytorch.log_model(model, name="model", input_example=example)
            tune.report({"epoch": epoch, "loss": config["x"] / epoch})
        # After the last report: only a trial that ran to its end gets here.
        mlflow.log_metric("final_score", 10 * config["x"])
        mlflow.log_text(f"x={config['x']}", "notes/summary.txt")
"""


@pytest.mark.e2e
def test_what_a_trainable_logs_to_mlflow_itself_lands_in_its_trials_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep = write_sweep(
        tmp_path,
        OWN_MLFLOW_CODE,
        metric="loss",
        mode="min",
        searcher={"kind": "grid"},
        # max_t the last epoch, as sweep files have it: a trial that gets there runs the
        # code after its loop (Ray's ASHA stopped it inside that last report).
        scheduler={"kind": "asha", "max_t": 4, "grace_period": 1, "reduction_factor": 2},
        max_concurrent_trials=1,  # one worker, reused: each trial's logs its own
        config={"api_token": TOKEN},
        params={"x": {"type": "grid", "values": [1.0, 2.0, 4.0, 8.0]}},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "logged to MLflow itself" not in out.stderr
    assert "Downloading artifacts" not in out.stderr + out.stdout  # staged without a word
    client, parent, trials = trial_runs(tmp_path)
    assert parent.info.status == "FINISHED"
    assert len(trials) == 4
    stopped = [run for run in trials if run.data.tags.get("tuner.stopped_early") == "asha"]
    assert stopped, "ASHA stopped no trial: the mid-trial case is not exercised"
    for run in trials:
        x = float(run.data.params["x"])
        assert run.data.params["layers"] == "3"
        assert run.data.tags["data_version"] == "v2"
        # The function had the token; MLflow has it nowhere.
        assert run.data.params["api_token"] == "<secret>"
        assert run.data.tags["login"] == "token <secret>"
        logged_config = client.download_artifacts(run.info.run_id, "config.json", str(tmp_path))
        assert json.loads(Path(logged_config).read_text())["api_token"] == "<secret>"
        history = client.get_metric_history(run.info.run_id, "train_loss")
        points = sorted((point.step, point.value) for point in history)
        last_epoch = len(client.get_metric_history(run.info.run_id, "loss"))
        assert points == [(epoch, x / epoch) for epoch in range(1, last_epoch + 1)]
        if run in stopped:
            assert last_epoch < 4
            assert "final_score" not in run.data.metrics  # its function never got there
            continue
        assert run.data.metrics["final_score"] == 10 * x
        summary = client.download_artifacts(run.info.run_id, "notes/summary.txt", str(tmp_path))
        assert Path(summary).read_text() == f"x={x}"
    # The model the best trial logged is a logged model of its run, and loads from there.
    [model] = client.search_logged_models([parent.info.experiment_id])
    best = next(run for run in trials if run.data.params["x"] == "1.0")
    assert (model.name, model.source_run_id) == ("model", best.info.run_id)
    outputs = client.get_run(best.info.run_id).outputs
    assert outputs is not None
    assert [o.model_id for o in outputs.model_outputs] == [model.model_id]
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)  # as a user loading it does
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    loaded = mlflow.pytorch.load_model(f"models:/{model.model_id}")
    assert loaded(torch.ones(1, 2)).sum().item() == pytest.approx(2.0 + loaded.bias.item())
    assert TOKEN.encode() not in (tmp_path / "mlflow.db").read_bytes()
    assert not [p for p in (tmp_path / "mlartifacts").rglob("*") if p.is_file()
                and TOKEN.encode() in p.read_bytes()]  # fmt: skip
    # Copied, then removed from the storage: the trial's run is where they are.
    assert not list((tmp_path / "tuner_runs").rglob("own_mlflow"))


ELSEWHERE_CODE = """
    import mlflow
    from ray import tune


    def fit(config):
        mlflow.set_tracking_uri(config["own_store"])  # the code's own choice
        mlflow.log_param("layers", 3)
        for epoch in range(1, 3):
            mlflow.log_metric("train_loss", config["x"] / epoch, step=epoch)
            tune.report({"epoch": epoch, "loss": config["x"] / epoch})
"""


@pytest.mark.e2e
def test_a_trainable_pointing_mlflow_elsewhere_is_told_where_its_run_went(tmp_path: Path) -> None:
    sweep = write_sweep(
        tmp_path,
        ELSEWHERE_CODE,
        metric="loss",
        mode="min",
        searcher={"kind": "grid"},
        max_concurrent_trials=1,  # one worker, reused: told once
        config={"own_store": f"sqlite:///{tmp_path / 'own.db'}"},
        params={"x": {"type": "grid", "values": [1.0, 2.0]}},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    told = [line for line in out.stderr.splitlines() if "logged to MLflow itself" in line]
    assert len(told) == 1, out.stderr
    assert f"in sqlite:///{tmp_path / 'own.db'}), not to the sweep's tracking store" in told[0]
    _client, parent, trials = trial_runs(tmp_path)
    assert parent.info.status == "FINISHED"
    assert len(trials) == 2
    assert all("train_loss" not in run.data.metrics for run in trials)


CLIENT_API_CODE = """
    from mlflow import MlflowClient
    from ray import tune


    def fit(config):
        # As a logger does (Lightning's MLFlowLogger given the environment's URI): the
        # client API, an experiment and a run of its own, no fluent run at all.
        client = MlflowClient()
        run = client.create_run(client.create_experiment("lightning_logs"))
        client.log_param(run.info.run_id, "layers", 3)
        for epoch in range(1, 4):
            client.log_metric(run.info.run_id, "train_loss", config["x"] / epoch, step=epoch)
            tune.report({"epoch": epoch, "loss": config["x"] / epoch})
        client.set_terminated(run.info.run_id)
"""


@pytest.mark.e2e
def test_what_a_trainable_logs_through_mlflows_client_lands_in_its_trials_run(
    tmp_path: Path,
) -> None:
    sweep = write_sweep(
        tmp_path,
        CLIENT_API_CODE,
        metric="loss",
        mode="min",
        searcher={"kind": "grid"},
        params={"x": {"type": "grid", "values": [2.0]}},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    client, _parent, [trial] = trial_runs(tmp_path)
    assert trial.data.params["layers"] == "3"
    history = client.get_metric_history(trial.info.run_id, "train_loss")
    assert sorted((p.step, p.value) for p in history) == [(1, 2.0), (2, 1.0), (3, 2.0 / 3)]
