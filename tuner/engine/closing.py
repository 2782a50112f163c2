"""Closing a sweep's MLflow runs after an exception: one line each, never hiding it."""

from __future__ import annotations

import logging

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
