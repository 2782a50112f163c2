"""The `tuner resume` command an interrupted sweep's last line gives, to run as it is.

It said `tuner resume NAME` whatever `--storage` and `--tracking-uri` the run had. Run
as given after `--storage s3://...`, the resume looked in ./tuner_runs and said the
sweep had no experiment there; after `--tracking-uri sqlite:///other.db`, it went on in
a new sweep run in ./mlflow.db, the trials' first epochs left behind in the other store,
and said the driver had been "killed or lost". The command names both when they are not
the defaults of the folder it ran in.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from tuner.defaults import DEFAULT_TRACKING_URI
from tuner.engine.storage import resolve_storage
from tuner.tracking.access import redacted

if TYPE_CHECKING:  # it imports Ray, which the line does without
    from tuner.engine.outcome import SweepInterrupted


def resume_command(sweep: str, experiment_uri: str, tracking_uri: str) -> str:
    """`experiment_uri`: STORAGE/SWEEP/run-..., as Ray Tune saved the sweep's state."""
    words = ["tuner", "resume", sweep]
    storage = experiment_uri.rsplit("/", 2)[0]
    if storage != resolve_storage(None).uri:
        words += ["--storage", storage]
    if tracking_uri != DEFAULT_TRACKING_URI:
        words += ["--tracking-uri", redacted(tracking_uri)]  # a password stays unprinted
    return shlex.join(words)


def interrupted_line(exc: SweepInterrupted, spec_path: Path | None, tracking_uri: str) -> str:
    """The last line of a sweep Ctrl-C or SIGTERM stopped: what was kept, what goes on."""
    how = "terminated" if exc.signal_name == "SIGTERM" else "interrupted"
    if exc.experiment_path is None:  # no trial had started: there is nothing to resume
        again = f"`tuner run {spec_path}`" if spec_path else "`tuner run`"
        return (
            f"{how} before Ray Tune saved the sweep's state; its MLflow run is marked "
            f"KILLED; {again} starts it again"
        )
    again = resume_command(exc.sweep, exc.experiment_path, tracking_uri)
    return (
        f"{how}; Ray Tune saved the sweep's state in {exc.experiment_path}; its "
        f"MLflow runs are marked KILLED; `{again}` continues it"
    )
