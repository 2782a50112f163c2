"""The driver's console: Ray's lines that are noise to a tuner user stay out of it."""

from __future__ import annotations

import logging
import time

import pytest
from ray.tune.utils import util

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
