"""A sweep stopped before Ray Tune saved its trials' state (a Ctrl-C or a killed driver
in the second between Ray writing `tuner.pkl` and its first snapshot) has nothing to
resume. The run said "Ray Tune saved the sweep's state ... `tuner resume` continues it";
the resume then printed Ray's traceback, ran a trial without the sweep's config (a
KeyError in the user's code, a FAILED run in MLflow) and ended "no trial finished".
And a resume stopped before the sweep went on says the sweep is as it was."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import NoReturn

import pytest
import typer
from mlflow import MlflowClient

from tests.conftest import run_and_signal, run_cli, write_slow_sweep
from tuner.cli.common import Terminated
from tuner.cli.sweeps import _drive
from tuner.engine.closing import interrupted
from tuner.engine.experiments import Experiment
from tuner.engine.outcome import SweepInterrupted
from tuner.engine.state_digest import TAG_STATE_DIGEST
from tuner.engine.storage import resolve_storage


def _experiment(tmp_path: Path, *files: str) -> Experiment:
    experiment = Experiment(resolve_storage(str(tmp_path / "runs")), "early", "run-1")
    Path(experiment.path).mkdir(parents=True)
    for name in files:
        (Path(experiment.path) / name).write_text("{}")
    return experiment


def test_an_interrupt_before_the_first_snapshot_does_not_say_resume(tmp_path: Path) -> None:
    only_the_tuner = _experiment(tmp_path, "tuner.pkl")
    assert interrupted("early", only_the_tuner, "SIGINT").experiment_path is None
    (Path(only_the_tuner.path) / "experiment_state-2026-01-01_00-00-00.json").write_text("{}")
    assert interrupted("early", only_the_tuner, "SIGINT").experiment_path == only_the_tuner.uri


def test_the_command_says_to_run_the_sweep_again(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    def stopped_early() -> NoReturn:
        raise SweepInterrupted("early", None, "SIGTERM")

    with pytest.raises(typer.Exit) as exited:
        _drive(stopped_early, Path("sweep.yaml"), f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert exited.value.exit_code == 143
    (line,) = capfd.readouterr().err.strip().splitlines()
    assert line == (
        "error: terminated before Ray Tune saved the sweep's state; its MLflow run is "
        "marked KILLED; `tuner run sweep.yaml` starts it again"
    )


@pytest.mark.e2e
def test_resume_without_a_snapshot_refuses_in_one_line_and_runs_nothing(tmp_path: Path) -> None:
    started = write_slow_sweep(tmp_path, "unsaved", num_samples=2, epochs=6)
    done = run_and_signal(tmp_path, started, signal.SIGTERM, "run", "sweep.yaml")
    assert done.returncode == 143, done.stderr
    # What a driver killed before Ray's first snapshot leaves: the Tuner and the sweep file.
    (folder,) = (tmp_path / "tuner_runs" / "unsaved").iterdir()
    for entry in folder.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        elif entry.name not in ("tuner.pkl", "sweep.yaml"):
            entry.unlink()
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("unsaved")
    assert experiment is not None
    # ... and no digest of that state on the sweep's run: the killed driver recorded none.
    runs = client.search_runs([experiment.experiment_id])
    (sweep_run,) = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    client.delete_tag(sweep_run.info.run_id, TAG_STATE_DIGEST)
    before = {r.info.run_id: r.info.status for r in client.search_runs([experiment.experiment_id])}

    resumed = run_cli("resume", "unsaved", cwd=tmp_path)

    assert resumed.returncode == 1, resumed.stderr
    (line,) = resumed.stderr.strip().splitlines()  # no traceback of Ray's
    assert line == (
        f"error: {folder}: Ray Tune saved no state of the trials to resume from (the sweep "
        "stopped before they started, or its storage is gone); `tuner run` starts the sweep "
        "again"
    )
    after = {r.info.run_id: r.info.status for r in client.search_runs([experiment.experiment_id])}
    assert after == before, "no trial ran, no run was opened or changed"


@pytest.mark.parametrize(
    ("interrupt", "said", "status"),
    [
        (KeyboardInterrupt(), "interrupted", 130),
        (Terminated(), "terminated", 143),
    ],
)
def test_a_resume_stopped_before_the_sweep_went_on_says_it_is_as_it_was(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    interrupt: KeyboardInterrupt,
    said: str,
    status: int,
) -> None:
    """A Ctrl-C while the resume checked the sweep or started Ray said "the sweep's MLflow
    run is marked KILLED", which it had not touched, and not that it still resumes."""

    def starting() -> NoReturn:
        raise interrupt

    with pytest.raises(typer.Exit) as exited:
        _drive(starting, None, f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert exited.value.exit_code == status
    (line,) = capfd.readouterr().err.strip().splitlines()
    assert line == f"error: {said}; the sweep is as it was; the same `tuner resume` continues it"
