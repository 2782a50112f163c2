"""`tuner sync`: make the tracking writes a journal kept while the store was gone."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from tuner.tracking.journal import read_journal
from tuner.tracking.writer import TrackingOffline, TrackingWriter, requests_in_flight


def sync_journal(path: Path, tracking_uri: str | None = None) -> int:
    """Replay the journal at `path` into its runs (at `tracking_uri`, or the store it was
    kept for); remove it once every write is made; return how many there were. If the
    store still does not answer, TrackingOffline names the journal the rest went to,
    and this one is removed: syncing it again would make its written part twice."""
    journal = read_journal(path)
    uri = tracking_uri or journal.tracking_uri
    writer = TrackingWriter(
        MlflowClient(uri), journal.experiment_id, requests_in_flight(uri), journal_dir=path.parent
    )
    try:
        for trial_id, run_id in journal.run_ids.items():
            writer.adopt(trial_id, run_id)
        for op in journal.ops:
            writer.submit(op)
        writer.flush()
    except TrackingOffline:
        path.unlink()  # the writer saved what it did not write, beside it, first
        raise
    finally:
        writer.close()
    path.unlink()
    return len(journal.ops)
