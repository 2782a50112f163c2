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

from tuner.defaults import DEFAULT_TRACKING_URI
from tuner.engine.storage import resolve_storage
from tuner.tracking.access import redacted


def resume_command(sweep: str, experiment_uri: str, tracking_uri: str) -> str:
    """`experiment_uri`: STORAGE/SWEEP/run-..., as Ray Tune saved the sweep's state."""
    words = ["tuner", "resume", sweep]
    storage = experiment_uri.rsplit("/", 2)[0]
    if storage != resolve_storage(None).uri:
        words += ["--storage", storage]
    if tracking_uri != DEFAULT_TRACKING_URI:
        words += ["--tracking-uri", redacted(tracking_uri)]  # a password stays unprinted
    return shlex.join(words)
