"""An interrupted sweep's last line gives the `tuner resume` command to run as it is:
with the run's `--storage` and `--tracking-uri`. It said `tuner resume NAME` alone;
run as given, the resume of an s3:// sweep said it had no experiment, and that of a
sweep tracked in another store went on in a new MLflow run in ./mlflow.db, its first
epochs left in the other store, and said its driver had been "killed or lost"."""

from __future__ import annotations

import shlex
import signal
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import run_and_signal, run_cli, write_slow_sweep
from tuner.cli.resume_advice import resume_command
from tuner.engine.experiments import Experiment
from tuner.engine.reopen import reopen_sweep
from tuner.engine.storage import resolve_storage
from tuner.spec import parse_spec


def test_the_command_names_what_is_not_the_default_and_no_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    here = f"{tmp_path}/tuner_runs/mnist/run-1"
    assert resume_command("mnist", here, "sqlite:///mlflow.db") == "tuner resume mnist"
    assert resume_command("mnist", "s3://bucket/sweeps/mnist/run-1", "sqlite:///mlflow.db") == (
        "tuner resume mnist --storage s3://bucket/sweeps"
    )
    assert resume_command("mnist", here, "http://me:hunter2@head:5000") == (
        "tuner resume mnist --tracking-uri 'http://me:***@head:5000'"
    )


def test_a_store_without_the_sweeps_run_is_named_in_the_note(tmp_path: Path) -> None:
    spec = parse_spec(
        {"name": "moved", "trainable": "slow:fit", "metric": "loss", "mode": "min",
         "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}}}
    )  # fmt: skip
    experiment = Experiment(resolve_storage(str(tmp_path / "runs")), "moved", "run-1")
    uri = f"sqlite:///{tmp_path / 'new.db'}"
    _, note = reopen_sweep(spec, experiment, uri, extended=False)
    assert note == (
        f"note: {uri} holds no MLflow run of sweep 'moved' ({experiment.uri}), nor the "
        "digest of its state: it goes on unchecked, in a new run there; a sweep run with "
        "another --tracking-uri resumes with that one"
    )


@pytest.mark.e2e
def test_the_command_given_resumes_the_sweep_in_its_own_runs(tmp_path: Path) -> None:
    started = write_slow_sweep(tmp_path, "elsewhere", num_samples=2, epochs=6)
    storage = tmp_path / "kept"
    done = run_and_signal(
        tmp_path, started, signal.SIGTERM, "run", "sweep.yaml",
        "--storage", str(storage), "--tracking-uri", "sqlite:///other.db",
    )  # fmt: skip
    assert done.returncode == 143, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    given = f"tuner resume elsewhere --storage {storage} --tracking-uri sqlite:///other.db"
    assert line.endswith(f"`{given}` continues it"), line

    resumed = run_cli(*shlex.split(given)[1:], cwd=tmp_path)

    assert resumed.returncode == 0, resumed.stderr
    assert "2 trials: 2 finished" in resumed.stdout
    assert "note:" not in resumed.stdout, "the sweep's own run, its state checked"
    assert not (tmp_path / "mlflow.db").exists(), "nothing went to the default store"
    client = MlflowClient(f"sqlite:///{tmp_path / 'other.db'}")
    experiment = client.get_experiment_by_name("elsewhere")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        if "mlflow.parentRunId" in run.data.tags:  # each epoch logged once
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
            assert steps == list(range(1, 7)), run.info.run_name
