"""The driver's console: Ray's lines that are noise to a tuner user stay out of it."""

from __future__ import annotations

import logging
import signal
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from ray.tune.utils import util

from tests.conftest import run_and_signal, run_cli
from tuner.engine.session import quiet_driver_output


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_ray_tunes_slow_step_warnings_stay_out_unless_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # quiet_driver_output sets these with setdefault: put back what the process had.
    for name in (
        "RAY_AIR_NEW_OUTPUT",
        "TUNE_PRINT_ALL_TRIAL_ERRORS",
        "RAY_IGNORE_UNHANDLED_ERRORS",
        "TUNE_WARN_THRESHOLD_S",
    ):
        monkeypatch.delenv(name, raising=False)
    # Ray warns only once its driver is a minute old (a slow CI run's drivers were).
    monkeypatch.setattr(util, "START_OF_TIME", time.time() - 120)
    caught = Lines()
    ray_logger = logging.getLogger(util.__name__)
    ray_logger.addHandler(caught)
    try:
        quiet_driver_output()
        with util.warn_if_slow("callbacks.on_trial_result", threshold=0.01):
            time.sleep(0.05)
        assert caught.lines == []
        # Ray's own knob, set by the user, brings them back.
        monkeypatch.setenv("TUNE_WARN_THRESHOLD_S", "0.01")
        with util.warn_if_slow("callbacks.on_trial_result", threshold=0.01):
            time.sleep(0.05)
        assert len(caught.lines) == 1
        assert "which may be a performance bottleneck" in caught.lines[0]
    finally:
        ray_logger.removeHandler(caught)


RESTORED_CODE = textwrap.dedent(
    """
    import tempfile
    import time
    from pathlib import Path

    from ray import tune


    def fit(config):
        start = 1
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as d:
                start = int(Path(d, "epoch").read_text()) + 1
        for epoch in range(start, 21):
            Path(config["started"]).touch()
            time.sleep(0.3)
            with tempfile.TemporaryDirectory() as d:
                Path(d, "epoch").write_text(str(epoch))
                tune.report({"loss": 1.0 / epoch}, checkpoint=tune.Checkpoint.from_directory(d))
    """
)


@pytest.mark.e2e
def test_resume_keeps_ray_workers_lines_off_the_terminal_as_run_does(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(RESTORED_CODE)
    started = tmp_path / "started"
    spec = {
        "name": "slow", "trainable": "slow:fit", "metric": "loss", "mode": "min",
        "num_samples": 2, "stop": {"training_iteration": 20},
        "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "config": {"started": str(started)},
    }  # fmt: skip
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    stopped = run_and_signal(tmp_path, started, signal.SIGINT, "run", "sweep.yaml")
    assert stopped.returncode == 130, stopped.stderr
    resumed = run_cli("resume", "slow", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "2 trials: 2 finished" in resumed.stdout
    # Each restored trial's worker said "(fit pid=...) Restored on 127.0.0.1 from
    # checkpoint: Checkpoint(...)" before tuner's wrapper had quieted it.
    for output in (stopped, resumed):
        assert "pid=" not in output.stdout + output.stderr, output.stderr
    assert "Restored on" not in resumed.stdout + resumed.stderr
