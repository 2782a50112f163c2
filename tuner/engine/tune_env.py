"""Ray Tune settings that Ray reads from the environment when fit() starts.

Set for our fit and put back after, so that other Tune runs in the process keep Ray's
defaults:
- Ray's CSV and TensorBoard loggers off: MLflow holds the metrics, and a file write per
  result cost ~5% of a sweep of short trials. Its JSON log stays (build_tuner adds it):
  resume reads it.
- Result buffering on where it is safe (see tuner.engine.buffering): a trial's actor
  hands the driver every result of a 0.25 s window at once instead of waiting a round
  trip through the driver after each epoch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from tuner.engine.buffering import BUFFER_LENGTH, BUFFER_WINDOW_S, buffering_is_safe
from tuner.spec import SweepSpec

NO_AUTO_LOGGERS = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}
BUFFERING = {
    "TUNE_RESULT_BUFFER_LENGTH": str(BUFFER_LENGTH),
    # Ray waits max(min, min(max, in-flight actor tasks // 10)) s: both ends pin it.
    "TUNE_RESULT_BUFFER_MIN_TIME_S": str(BUFFER_WINDOW_S),
    "TUNE_RESULT_BUFFER_MAX_TIME_S": str(BUFFER_WINDOW_S),
}


def tune_settings(spec: SweepSpec) -> dict[str, str]:
    return {**NO_AUTO_LOGGERS, **(BUFFERING if buffering_is_safe(spec) else {})}


@contextmanager
def tune_environment(spec: SweepSpec) -> Iterator[None]:
    with environment(tune_settings(spec)):
        yield


@contextmanager
def environment(settings: Mapping[str, str]) -> Iterator[None]:
    previous = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
