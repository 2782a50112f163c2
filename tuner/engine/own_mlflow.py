"""MLflow calls a trainable makes itself: where they went, said in the trial's output.

Training code adapted from a single-run script calls `mlflow.log_metric` itself. In a
trial's worker that went, without a word, to a fresh SQLite store in the trial's
temporary working folder under Ray's session (Ray #36257; the sweep's own store has one
writer, the driver, so tuner does not point workers at it): the user looked for those
values in the sweep's MLflow and found nothing. The values stay where MLflow put them;
the user is told once per worker where that is, and how to have them in the trial's run.
"""

from __future__ import annotations

import sys
from typing import Any

_told = False  # once per worker process: a reused worker runs many trials


def fluent_run_id() -> str | None:
    """The run MLflow's fluent API (`mlflow.log_metric`) last used in this thread, if
    the user's code imported MLflow at all (tuner imports none into a worker)."""
    fluent: Any = sys.modules.get("mlflow.tracking.fluent")
    if fluent is None:
        return None
    active = fluent.active_run()
    if active is not None:
        return str(active.info.run_id)
    last: Any = getattr(fluent, "_last_active_run_id", None)  # private: read if there
    value = last.get() if hasattr(last, "get") else None
    return value if isinstance(value, str) else None


def say_where_mlflow_went(before: str | None) -> None:
    """After a trial's function: when it logged to MLflow itself (a run other than
    `before`), end that run (else the next trial on this worker logs into it) and say
    once where its values are."""
    global _told
    run_id = fluent_run_id()
    if run_id is None or run_id == before:
        return
    import mlflow

    uri = mlflow.get_tracking_uri()
    if mlflow.active_run() is not None:
        mlflow.end_run()
    if _told:
        return
    _told = True
    print(
        f"warning: the trainable logged to MLflow itself (run {run_id} in {uri}), not to "
        "the sweep's tracking store: report values with ray.tune.report to have them in "
        "the trial's run",
        file=sys.stderr,
        flush=True,
    )
