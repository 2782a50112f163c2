"""The end of a sweep reads no trial's whole result history back from storage.

When a sweep ends (and when one is resumed), Ray Tune builds an `ExperimentAnalysis`,
which opens every trial's result file in the sweep's storage and parses it into a
pandas frame, one after another, so that each `Result` carries its metrics history.
tuner never reads those frames: every epoch of every trial is already in MLflow, and
the end of a sweep needs only each trial's last result and checkpoint, which Ray Tune
holds in memory. At 1,500 null trials on a local disk that read took 6 s of the end of
the sweep; on S3 it is two requests per trial (an existence check, then the read).

`result_histories_unread()` leaves the frames empty while it is open. A `Result`'s
`metrics_dataframe` is then None; its metrics, checkpoint, path and error are Ray's.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from ray.tune import ExperimentAnalysis

logger = logging.getLogger(__name__)

_READER = "_fetch_trial_dataframes"


@contextlib.contextmanager
def result_histories_unread() -> Iterator[None]:
    """Within it, Ray Tune's ExperimentAnalysis reads no per-trial result file."""
    original = getattr(ExperimentAnalysis, _READER, None)
    if original is None:
        logger.debug("Ray Tune's ExperimentAnalysis changed: results are read back")
        yield
        return
    if getattr(original, "_tuner_unread", False):  # nested: the outer one restores
        yield
        return

    def no_histories(self: Any) -> dict[str, Any]:
        return {}

    no_histories._tuner_unread = True  # type: ignore[attr-defined]
    setattr(ExperimentAnalysis, _READER, no_histories)
    try:
        yield
    finally:
        setattr(ExperimentAnalysis, _READER, original)
