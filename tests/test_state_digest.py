"""`tuner resume` loads only the state the sweep left: a pickle planted in the storage
after the sweep stopped is refused before Ray unpickles it."""

from __future__ import annotations

import pickle
import signal
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import run_and_signal, run_cli, write_slow_sweep
from tuner.engine.experiments import Experiment
from tuner.engine.state_digest import StateChanged, check_state, state_digest
from tuner.engine.storage import resolve_storage


def experiment_with(tmp_path: Path, files: dict[str, bytes]) -> Experiment:
    experiment = Experiment(resolve_storage(str(tmp_path)), "s", "run-1")
    folder = Path(experiment.path)
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "trial_1").mkdir()  # trial folders are not part of it
    return experiment


def test_the_digest_covers_every_state_file_and_nothing_else(tmp_path: Path) -> None:
    experiment = experiment_with(tmp_path, {"tuner.pkl": b"a", "sweep.yaml": b"b"})
    recorded = state_digest(experiment)
    folder = Path(experiment.path)
    (folder / ".validate_storage_marker").write_bytes(b"")
    (folder / "trial_1" / "result.json").write_bytes(b"{}")
    assert check_state(experiment, recorded) is None
    (folder / "sweep.yaml").write_bytes(b"trainable: evil:code")
    with pytest.raises(StateChanged, match="the saved state changed after the sweep stopped"):
        check_state(experiment, recorded)
    (folder / "sweep.yaml").write_bytes(b"b")
    (folder / "searcher-state-1.pkl").write_bytes(b"new")  # a file added counts too
    with pytest.raises(StateChanged):
        check_state(experiment, recorded)


def test_without_a_recorded_digest_resume_goes_on_and_says_so(tmp_path: Path) -> None:
    experiment = experiment_with(tmp_path, {"tuner.pkl": b"a"})
    note = check_state(experiment, None)
    assert note is not None and "without recording a digest" in note


class Planted:
    """What an attacker with write access to the storage would put in tuner.pkl."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (eval, (f"__import__('pathlib').Path({str(self.marker)!r}).write_text('ran')",))


@pytest.mark.e2e
def test_resume_refuses_a_planted_pickle(tmp_path: Path) -> None:
    started = write_slow_sweep(tmp_path, "planted")
    done = run_and_signal(tmp_path, started, signal.SIGINT, "run", "sweep.yaml")
    assert done.returncode == 130, done.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("planted")
    assert experiment is not None
    (parent,) = [
        run
        for run in client.search_runs([experiment.experiment_id])
        if run.data.tags.get("tuner.role") == "sweep"
    ]
    assert parent.data.tags["tuner.state_digest"].startswith("sha256:")

    (state,) = (tmp_path / "tuner_runs" / "planted").glob("run-*/tuner.pkl")
    marker = tmp_path / "planted-code-ran"
    state.write_bytes(pickle.dumps(Planted(marker)))
    resumed = run_cli("resume", "planted", cwd=tmp_path, timeout=300)
    assert resumed.returncode == 1, resumed.stderr
    (line,) = resumed.stderr.strip().splitlines()
    assert "the saved state changed after the sweep stopped" in line
    assert not marker.exists()
