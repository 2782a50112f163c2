"""A trainable that calls `mlflow.log_metric` itself, run through the `tuner` command:
its values went to a SQLite store in the trial's temporary folder under Ray's session,
and nothing said so; the user found them nowhere in the sweep's MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.test_user_code import trial_runs, write_sweep

OWN_MLFLOW_CODE = """
    import mlflow
    from ray import tune


    def fit(config):
        mlflow.log_param("layers", 3)  # as the single-run script did
        for epoch in range(1, 3):
            mlflow.log_metric("train_loss", config["x"] / epoch, step=epoch)
            tune.report({"epoch": epoch, "loss": config["x"] / epoch})
"""


@pytest.mark.e2e
def test_a_trainable_logging_to_mlflow_itself_is_told_where_that_went(tmp_path: Path) -> None:
    sweep = write_sweep(
        tmp_path,
        OWN_MLFLOW_CODE,
        metric="loss",
        mode="min",
        searcher={"kind": "grid"},
        max_concurrent_trials=1,  # one worker, reused: told once
        params={"x": {"type": "grid", "values": [1.0, 2.0]}},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    told = [line for line in out.stderr.splitlines() if "logged to MLflow itself" in line]
    assert len(told) == 1, out.stderr
    assert "not to the sweep's tracking store: report values with ray.tune.report" in told[0]
    _client, parent, trials = trial_runs(tmp_path)
    assert parent.info.status == "FINISHED"
    # The sweep's runs are tuner's: the trials' own MLflow runs did not land there.
    assert len(trials) == 2
    assert all("train_loss" not in run.data.metrics for run in trials)
