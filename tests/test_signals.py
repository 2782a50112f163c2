"""SIGTERM to a real `tuner run` (a scheduler's stop, `kill`, a machine going down) ends
it as Ctrl-C does: Ray Tune saves the state, every MLflow run is closed, exit 143, and
`tuner resume` finishes the sweep."""

from __future__ import annotations

import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import TUNER, cli_env, run_cli

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
    process = subprocess.Popen(
        [*TUNER, "run", "sweep.yaml"],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)  # a few epochs in
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 143, stderr
    # One line, tuner's: not Ray's advice to call Tuner.restore, nor a stack dump.
    (line,) = stderr.strip().splitlines()
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
