"""Defaults and settings shared by every package; import-light so `tuner --help` stays fast."""

from __future__ import annotations

import os
from typing import Any

# SQLite in the working directory: MLflow 3's file store needs opting in, and one
# writer process (the sweep's driver) is what SQLite handles well.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

# Ray Tune state and checkpoints, relative to the working directory.
DEFAULT_STORAGE = "tuner_runs"
# Set by `tuner submit` in the job's environment; the sweep's parent run is tagged with it.
SUBMISSION_ID_ENV = "TUNER_SUBMISSION_ID"

# The sweep file's `checkpoint` defaults; a built-in trainer called without a plan uses
# them too (see tuner.spec.schema.CheckpointPolicy for why 30 s).
CHECKPOINT_EVERY_EPOCHS = 1
CHECKPOINT_MIN_INTERVAL_S = 30.0


def s3_endpoint() -> str | None:
    """The S3-compatible endpoint to use instead of AWS's, from the standard variables."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def s3_filesystem() -> Any:
    """A pyarrow S3 filesystem for the sweep's storage: the endpoint and region of the
    standard variables (pyarrow imported here, where it is needed)."""
    import pyarrow.fs

    return pyarrow.fs.S3FileSystem(
        endpoint_override=s3_endpoint(),
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
    )


# A sweep stops when its first this many trials to end all failed with the same error.
FAIL_FAST_AFTER = 3
