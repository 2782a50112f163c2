"""The last writes that close a sweep's runs, under a further Ctrl-C: held once and said,
a second lets the user out. An impatient second Ctrl-C landed in the tracking flush and
left a trial's run RUNNING in MLflow for good (one CI run in three)."""

from __future__ import annotations

import signal

import pytest

from tuner.engine.signals import InterruptsHeld

CLOSING = "closing the sweep's MLflow runs; press Ctrl-C again to leave them RUNNING"


def test_a_ctrl_c_while_closing_waits_for_the_block_then_stops(
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = signal.getsignal(signal.SIGINT)
    finished = False
    with pytest.raises(KeyboardInterrupt), InterruptsHeld(CLOSING):
        signal.raise_signal(signal.SIGINT)
        finished = True  # the writes after the Ctrl-C still happen
    assert finished
    assert CLOSING in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before


def test_a_sigterm_while_closing_is_held_too() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    finished = False
    with pytest.raises(KeyboardInterrupt), InterruptsHeld(CLOSING):
        signal.raise_signal(signal.SIGTERM)
        finished = True
    assert finished
    assert signal.getsignal(signal.SIGTERM) is previous


def test_a_second_ctrl_c_while_closing_leaves_at_once() -> None:
    reached = False
    with pytest.raises(KeyboardInterrupt), InterruptsHeld(CLOSING):
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
        reached = True
    assert not reached


def test_closing_after_an_interrupt_keeps_that_interrupt(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In the handler of the interrupt that ended the sweep, a held Ctrl-C is not raised
    again: the first one, with what it says (state saved, how to resume), goes on."""

    class Stopped(KeyboardInterrupt):
        pass

    with pytest.raises(Stopped):
        try:
            raise Stopped
        except KeyboardInterrupt:
            with InterruptsHeld(CLOSING):
                signal.raise_signal(signal.SIGINT)
            raise
    assert "closing the sweep's MLflow runs" in capsys.readouterr().err


def test_nothing_held_nothing_raised() -> None:
    before = signal.getsignal(signal.SIGINT)
    with InterruptsHeld(CLOSING):
        pass
    assert signal.getsignal(signal.SIGINT) is before


def test_a_ctrl_c_while_ray_stops_after_a_finished_sweep_is_not_raised() -> None:
    """The sweep had finished and said so; a Ctrl-C in Ray's shutdown ended the command
    with status 1, or would now call it interrupted."""
    before = signal.getsignal(signal.SIGINT)
    with InterruptsHeld("stopping Ray", then_raise=False):
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
