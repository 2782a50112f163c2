"""A sweep's storage folder moved since it was interrupted: `tuner resume --storage NEW`
refuses in one line naming where it ran. It went on in a new MLflow sweep run, a
started trial's epochs split over a KILLED run and a FINISHED one (an epoch logged in
both), and a trial that had not started failed "Unable to set up cluster storage"."""

from __future__ import annotations

import shlex
import signal
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import run_and_signal, run_cli, write_slow_sweep

pytestmark = pytest.mark.e2e


def _runs(tmp_path: Path) -> dict[str, str]:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("moving")
    assert experiment is not None
    return {r.info.run_id: r.info.status for r in client.search_runs([experiment.experiment_id])}


def test_resume_from_a_moved_folder_says_where_the_sweep_ran(tmp_path: Path) -> None:
    started = write_slow_sweep(tmp_path, "moving", num_samples=2, epochs=6)
    done = run_and_signal(tmp_path, started, signal.SIGTERM, "run", "sweep.yaml")
    assert done.returncode == 143, done.stderr
    (tmp_path / "tuner_runs").rename(tmp_path / "moved")
    (folder,) = (tmp_path / "moved" / "moving").iterdir()
    before = _runs(tmp_path)

    resumed = run_cli("resume", "moving", "--storage", "moved", cwd=tmp_path)

    assert resumed.returncode == 1, resumed.stderr
    (line,) = resumed.stderr.strip().splitlines()
    ran_in = tmp_path / "tuner_runs" / "moving" / folder.name
    given = f"tuner resume moving --storage {tmp_path / 'tuner_runs'}"
    assert line == (
        f"error: sweep 'moving' ran with its state in {ran_in}, not {folder}: Ray Tune's "
        f"saved trials and the sweep's MLflow runs name that place; move it back and run "
        f"`{given}`"
    )
    assert _runs(tmp_path) == before, "no run opened, none changed"

    (tmp_path / "moved").rename(tmp_path / "tuner_runs")
    back = run_cli(*shlex.split(given)[1:], cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert "2 trials: 2 finished" in back.stdout
    assert len(_runs(tmp_path)) == 3, "one sweep run and one per trial, as before"
