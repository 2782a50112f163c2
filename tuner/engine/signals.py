"""Ctrl-C during a sweep: notice the graceful stop Ray Tune makes of it; restore the handler."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from ray import tune

logger = logging.getLogger(__name__)


class InterruptWatch(tune.Callback):  # type: ignore[misc]
    """Notices the Ctrl-C that Ray Tune turns into a graceful stop.

    Tune catches SIGINT, stops the trials, saves state and returns from fit() as if the
    sweep had finished, keeping the fact in a local variable. Tune installs its handler
    before calling callbacks' setup(), so ours goes on top and hands the signal on.
    """

    def __init__(self) -> None:
        self.interrupted = False

    def __getstate__(self) -> dict[str, Any]:
        return {"interrupted": False}

    def setup(
        self,
        stop: Any = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals only reach the main thread; Tune skips them too
        tune_handler = signal.getsignal(signal.SIGINT)

        def record(signum: int, frame: FrameType | None) -> None:
            self.interrupted = True
            if callable(tune_handler):
                tune_handler(signum, frame)

        signal.signal(signal.SIGINT, record)


@contextmanager
def restored_sigint() -> Iterator[None]:
    """Tune leaves its SIGINT handler installed after a normal finish; a later Ctrl-C
    (say, during the model export) would then be swallowed. Put the caller's back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
