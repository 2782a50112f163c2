"""Ctrl-C or SIGTERM during a sweep: the graceful stop Ray Tune makes of Ctrl-C, for
both; restore the handlers after."""

from __future__ import annotations

import logging
import signal
import sys
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
        self.signal_name = "SIGINT"

    def __getstate__(self) -> dict[str, Any]:
        return {"interrupted": False, "signal_name": "SIGINT"}

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
            self.signal_name = signal.Signals(signum).name
            if callable(tune_handler):
                # Tune knows SIGINT only: SIGTERM (a scheduler, `kill`, a system going
                # down) gets the same graceful stop, state saved and runs closed.
                tune_handler(signal.SIGINT, frame)

        signal.signal(signal.SIGINT, record)
        signal.signal(signal.SIGTERM, record)


@contextmanager
def restored_signal_handlers() -> Iterator[None]:
    """Tune leaves its SIGINT handler (and InterruptWatch its SIGTERM one) installed after
    a normal finish; a later Ctrl-C (say, during the model export) would then be
    swallowed. Put the caller's back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextmanager
def callers_sigterm_kept() -> Iterator[None]:
    """Around ray.init, which makes SIGTERM's handler `sys.exit(15)`: a SIGTERM after it
    (while the best model was exported, say) exited 15 with no word and the sweep's run
    FAILED, where the command's own handler ends it as Ctrl-C does (143, runs KILLED).
    The caller's handler comes back, and gets a SIGTERM that came during ray.init."""
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield  # Python's default or none: Ray's sys.exit is no worse
        return
    try:
        yield
    except SystemExit as exc:
        if exc.code == signal.SIGTERM:
            previous(signal.SIGTERM, None)  # raises the caller's interrupt, as it would have
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


class InterruptsHeld:
    """Around the last steps of a command that a Ctrl-C must not cut in half: a tracking
    flush cut short left trials' runs RUNNING for good; a `ray.shutdown` cut short ended
    the command with status 1. One Ctrl-C (or SIGTERM) there is held and `saying` is
    said; a second lets the user out at once. A held one is raised once the block ends,
    if `then_raise` and no exception was already on its way out when the block began
    (the interrupt being handled, say, which goes on as it was)."""

    def __init__(self, saying: str, *, then_raise: bool = True) -> None:
        self._saying = saying
        self._then_raise = then_raise
        self._held: int | None = None
        self._previous: dict[int, Any] = {}
        self._unwinding = False

    def __enter__(self) -> InterruptsHeld:
        if threading.current_thread() is not threading.main_thread():
            return self  # signals only reach the main thread
        self._unwinding = sys.exc_info()[1] is not None
        for number in (signal.SIGINT, signal.SIGTERM):
            self._previous[number] = signal.signal(number, self._hold)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        raising = self._then_raise and not self._unwinding and exc_info[1] is None
        if self._held is not None and raising:
            raise KeyboardInterrupt

    def _hold(self, signum: int, frame: FrameType | None) -> None:
        if self._held is not None:
            raise KeyboardInterrupt  # asked twice: out now
        self._held = signum
        print(self._saying, file=sys.stderr, flush=True)
