"""SIGTERM to a real `tuner run` (a scheduler's stop, `kill`, a machine going down) ends
it as Ctrl-C does: Ray Tune saves the state, every MLflow run is closed, exit 143, and
`tuner resume` finishes the sweep."""

from __future__ import annotations

import signal
import textwrap
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import run_and_signal, run_cli

pytestmark = pytest.mark.e2e

SLOW = textwrap.dedent(
    """
    import time
    from pathlib import Path

    from ray import tune


    def fit(config):
        for epoch in range(1, config["epochs"] + 1):
            Path(config["started"]).touch()  # tells the test a trial is mid-run
            time.sleep(0.2)
            tune.report({"epoch": epoch, "loss": 1.0 / epoch})
    """
)


def test_sigterm_saves_the_sweep_closes_every_run_and_exits_143(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(SLOW)
    started = tmp_path / "started"
    spec = {
        "name": "terminated",
        "trainable": "slow:fit",
        "metric": "loss",
        "mode": "min",
        "num_samples": 3,
        "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "config": {"started": str(started), "epochs": 10},
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    done = run_and_signal(tmp_path, started, signal.SIGTERM, "run", "sweep.yaml")
    assert done.returncode == 143, done.stderr
    # One line, tuner's: not Ray's advice to call Tuner.restore, nor a stack dump.
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: terminated; Ray Tune saved the sweep's state in")
    assert line.endswith("`tuner resume terminated` continues it")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("terminated")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert runs and {r.info.status for r in runs} == {"KILLED"}, "no run left RUNNING"

    resumed = run_cli("resume", "terminated", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "3 trials: 3 finished" in resumed.stdout
