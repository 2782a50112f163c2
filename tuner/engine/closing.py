"""Closing a sweep's MLflow runs after an exception: one line each, never hiding it."""

from __future__ import annotations

import logging

from mlflow.entities import RunStatus

from tuner.engine.experiments import Experiment
from tuner.engine.outcome import SweepInterrupted
from tuner.engine.signals import InterruptsHeld
from tuner.tracking.runs import SweepRun
from tuner.tracking.trials import TrialTracker
from tuner.tracking.writer import TrackingWriter

logger = logging.getLogger(__name__)


def end_trials_quietly(tracker: TrialTracker) -> None:
    try:
        tracker.end_open_runs("interrupted")
    except Exception as exc:
        logger.warning("could not close the trials' MLflow runs: %s", str(exc).splitlines()[0])


def close_quietly(writer: TrackingWriter, sweep: SweepRun, status: int) -> None:
    """Record how the sweep ended without hiding the exception that ended it: one line
    each, no traceback, since the exception that ended the sweep is the one to read."""
    try:
        writer.flush()
    except Exception as exc:
        logger.warning("could not flush trial tracking: %s", str(exc).splitlines()[0])
    try:
        sweep.finish(status)
    except Exception as exc:
        logger.warning("could not close the sweep's MLflow run: %s", str(exc).splitlines()[0])


def close_interrupted(tracker: TrialTracker, writer: TrackingWriter, sweep: SweepRun) -> None:
    """After an interrupt, every run ends KILLED. An impatient Ctrl-C meanwhile waits for
    these last writes (a few hundred ms), or the trials' runs stayed RUNNING for good."""
    with InterruptsHeld(
        "closing the sweep's MLflow runs; press Ctrl-C again to leave them RUNNING"
    ):
        end_trials_quietly(tracker)
        close_quietly(writer, sweep, RunStatus.KILLED)


def resumable(interrupt: KeyboardInterrupt, sweep: str, experiment: Experiment) -> BaseException:
    """The interrupt to end with: one that says how to resume, where Ray Tune has saved a
    state to resume from (a second Ctrl-C out of its graceful stop, one during the best
    model's export), the interrupt as it was otherwise."""
    if isinstance(interrupt, SweepInterrupted) or not experiment.resumable():
        return interrupt
    signal_name = getattr(interrupt, "signal_name", "SIGINT")  # the CLI's SIGTERM says so
    return SweepInterrupted(sweep, experiment.uri, signal_name)


def interrupted(sweep: str, experiment: Experiment, signal_name: str) -> SweepInterrupted:
    """The interrupt that ended fit(). A Ctrl-C just as it began stops it before Ray Tune
    saved the trials' state: that one says so (no path), not to resume what cannot be."""
    saved = experiment.uri if experiment.resumable() else None
    return SweepInterrupted(sweep, saved, signal_name)
