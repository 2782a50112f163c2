"""A user's own training function, importable from the working directory, run by the CLI."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import run_cli

pytestmark = pytest.mark.e2e

USER_CODE = textwrap.dedent(
    '''
    import tempfile
    from pathlib import Path

    from ray import tune


    def fit(config: dict) -> None:
        """Minimizes (x - 3)^2 by 'training' for a few epochs; checkpoints every epoch."""
        start = 1
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as d:
                start = int(Path(d, "epoch").read_text()) + 1
        for epoch in range(start, config["epochs"] + 1):
            loss = (config["x"] - 3.0) ** 2 / epoch
            with tempfile.TemporaryDirectory() as d:
                Path(d, "epoch").write_text(str(epoch))
                tune.report({"epoch": epoch, "loss": loss},
                            checkpoint=tune.Checkpoint.from_directory(d))
    '''
)


def test_user_function_from_the_working_directory(tmp_path: Path) -> None:
    package = tmp_path / "my_project"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text(USER_CODE)
    spec = {
        "name": "user-fn",
        "trainable": "my_project.train:fit",
        "metric": "loss",
        "mode": "min",
        "num_samples": 4,
        "searcher": {"kind": "optuna", "sampler": "tpe", "seed": 0},
        "params": {"x": {"type": "float", "low": -10.0, "high": 10.0}},
        "config": {"epochs": 3},
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))

    assert run_cli("validate", "sweep.yaml", cwd=tmp_path).returncode == 0
    out = run_cli("run", "sweep.yaml", cwd=tmp_path)  # every default: sqlite, ./tuner_runs
    assert out.returncode == 0, out.stderr

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("user-fn")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    trials = [r for r in runs if r.data.tags.get("tuner.role") == "trial"]
    assert len(trials) == 4
    for run in trials:
        x = float(run.data.params["x"])
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [m.step for m in history] == [1, 2, 3]
        assert history[-1].value == pytest.approx((x - 3.0) ** 2 / 3)
    best = min(trials, key=lambda r: r.data.metrics["loss"])
    parent = next(r for r in runs if r.data.tags.get("tuner.role") == "sweep")
    assert parent.data.tags["tuner.best_run_id"] == best.info.run_id
    # No built-in exporter for user code: the raw checkpoint is the logged artifact.
    assert [a.path for a in client.list_artifacts(best.info.run_id, "checkpoint")] == [
        "checkpoint/epoch"
    ]
    assert (tmp_path / "tuner_runs" / "user-fn").is_dir()
