"""Sweeps started at the same moment on a SQLite store nobody has used: each gets its
own parent run in one experiment, none crashes in MLflow's schema creation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import cli_env

pytestmark = pytest.mark.e2e

# One process = one `tuner run` opening the store: the sweep's parent run, nothing more.
START_ONE = """
import sys, time
from tuner.spec import parse_spec
from tuner.tracking.runs import SweepRun
spec = parse_spec({"name": "same", "trainable": "builtin:classifier", "metric": "val_loss",
                   "mode": "min", "params": {"lr": {"type": "float", "low": 0.01, "high": 0.1}}})
while time.time() < float(sys.argv[2]):  # start together, imports done
    time.sleep(0.005)
print(SweepRun.start(spec, None, sys.argv[1]).run_id)
"""


def test_concurrent_first_use_of_a_sqlite_store(tmp_path: Path) -> None:
    import time

    uri = f"sqlite:///{tmp_path}/fresh.db"
    go = time.time() + 8  # after every process has imported MLflow on 2 cores
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", START_ONE, uri, str(go)],
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, [e for _, e in outputs]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("same")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.info.run_id for run in runs) == sorted(o.strip() for o, _ in outputs)
