"""SIGTERM to a real `tuner run` (a scheduler's stop, `kill`, a machine going down) ends
it as Ctrl-C does: Ray Tune saves the state, every MLflow run is closed, exit 143, and
`tuner resume` finishes the sweep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import TUNER, cli_env, run_and_signal, run_cli, write_slow_sweep
from tuner.engine import startup
from tuner.engine.phases import Phases
from tuner.spec import parse_spec

pytestmark = pytest.mark.e2e


def test_sigterm_saves_the_sweep_closes_every_run_and_exits_143(tmp_path: Path) -> None:
    started = write_slow_sweep(tmp_path, "terminated", num_samples=3)
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


def test_a_second_ctrl_c_still_closes_every_run_and_the_sweep_resumes(tmp_path: Path) -> None:
    """Tune's graceful stop gives the second Ctrl-C back to Python: a KeyboardInterrupt
    out of fit(). The trials' runs were left RUNNING in MLflow for good."""
    started = write_slow_sweep(tmp_path, "impatient")
    done = run_and_signal(tmp_path, started, signal.SIGINT, "run", "sweep.yaml", again_after=0.1)
    assert done.returncode == 130, done.stderr
    # Wherever the second one lands (Tune's stop, the runs' closing, Ray's shutdown), the
    # last line says how to go on.
    assert done.stderr.strip().splitlines()[-1].endswith("`tuner resume impatient` continues it")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("impatient")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3 and {r.info.status for r in runs} == {"KILLED"}, "no run left RUNNING"

    resumed = run_cli("resume", "impatient", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "2 trials: 2 finished" in resumed.stdout


def test_ctrl_c_while_ray_starts_ends_the_sweep_run_killed_not_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command says "marked KILLED"; the run said FAILED, "Ray did not start"."""

    def interrupted(*args: object, **kwargs: object) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(startup, "start_or_join", interrupted)
    lr = {"type": "float", "low": 0.01, "high": 0.1}
    spec = parse_spec(
        {"name": "early", "trainable": "builtin:classifier", "metric": "val_loss", "mode": "min",
         "params": {"lr": lr}}
    )  # fmt: skip
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(KeyboardInterrupt):
        startup.start_sweep(
            spec, address=None, num_cpus=None, tracking_uri=uri, spec_path=None, phases=Phases()
        )
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("early")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "KILLED"
    assert "tuner.error" not in run.data.tags


def test_a_resume_while_the_sweep_still_runs_is_refused_then_works_once_it_stopped(
    tmp_path: Path,
) -> None:
    """`tuner resume` in a second terminal while the sweep ran trained its trials a second
    time, into the same storage and MLflow runs: every epoch logged twice."""
    started = write_slow_sweep(tmp_path, "twice-driven", epochs=60)
    process = subprocess.Popen(
        [*TUNER, "run", "sweep.yaml"], cwd=tmp_path, env=cli_env(), stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        refused = run_cli("resume", "twice-driven", cwd=tmp_path)
        assert refused.returncode == 1, refused.stderr
        assert process.poll() is None, "the sweep ended before the resume was refused"
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("error: sweep 'twice-driven' (")
    assert line.endswith("is running: another tuner process drives it now; let it finish, "
                         "or stop it (Ctrl-C) and resume then")  # fmt: skip
    assert process.returncode == 130, stderr

    resumed = run_cli("resume", "twice-driven", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "2 trials: 2 finished" in resumed.stdout
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("twice-driven")
    assert experiment is not None
    for run in client.search_runs([experiment.experiment_id], "tags.`tuner.role` = 'trial'"):
        steps = [point.step for point in client.get_metric_history(run.info.run_id, "loss")]
        assert sorted(steps) == list(range(1, 61)), "each epoch logged once"


class Stopped(KeyboardInterrupt):
    """What a caller's SIGTERM handler raises (the CLI's: tuner.cli.common.Terminated)."""


def stop(signum: int, frame: object) -> None:
    raise Stopped


@pytest.mark.ray
def test_ray_init_leaves_the_callers_sigterm_handler_in_place() -> None:
    """ray.init made SIGTERM `sys.exit(15)`: a SIGTERM while the best model was exported
    exited 15, no word said, the sweep's run FAILED, not 143 with it KILLED."""
    import ray

    from tuner.engine.session import start_or_join

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        assert start_or_join(None, 1)
        try:
            assert signal.getsignal(signal.SIGTERM) is stop
        finally:
            ray.shutdown()
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_sigterm_during_ray_init_reaches_the_callers_handler() -> None:
    from tuner.engine.signals import callers_sigterm_kept

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(Stopped), callers_sigterm_kept():
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))  # as Ray's
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs before this ends
        assert signal.getsignal(signal.SIGTERM) is stop
    finally:
        signal.signal(signal.SIGTERM, previous)
