"""Tracking writes the store never took, kept in a local file until it answers again.

When the tracking server stops answering mid-sweep, the writer stops waiting on it
(each request would cost half a minute of retries) and keeps every write it could not
make, in order, here: one JSON line per operation, after a header with the store, the
experiment and the runs already created. `tuner sync FILE` replays them, into the same
runs, and removes the file once every write is made.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.entities import Metric

from tuner.tracking.operations import (
    CopyOwnLogs,
    CreateRun,
    EndRun,
    LogMetrics,
    Op,
    ReopenRun,
    SetTags,
)

# On a cluster the driver runs on the head in a job's temporary folder: the journal goes
# where it outlives the job. TUNER_UNSYNCED_DIR moves it.
DEFAULT_JOURNAL_DIR = Path(os.environ.get("TUNER_UNSYNCED_DIR", "~/.tuner/unsynced")).expanduser()
FORMAT = "tuner-tracking-journal/1"


@dataclass(frozen=True)
class Journal:
    tracking_uri: str
    experiment_id: str
    run_ids: dict[str, str]  # trial id -> its run, for the runs that exist
    ops: list[Op]


def save_journal(
    folder: Path, tracking_uri: str, experiment_id: str, run_ids: dict[str, str], ops: list[Op]
) -> Path:
    """Write the journal (readable by its owner only: it holds params and tags)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{experiment_id}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.jsonl"
    header = {
        "format": FORMAT,
        "tracking_uri": tracking_uri,
        "experiment_id": experiment_id,
        "run_ids": run_ids,
    }
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(json.dumps(header) + "\n")
        for op in ops:
            out.write(json.dumps(_encode(op)) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return path


def read_journal(path: Path) -> Journal:
    """The journal at `path`; ValueError with one line if it is not one."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        header = json.loads(lines[0])
        if header.get("format") != FORMAT:
            raise ValueError(f"{path}: not a tuner tracking journal")
        ops = [_decode(json.loads(line)) for line in lines[1:] if line.strip()]
    except (OSError, IndexError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: cannot read the journal: {exc}") from None
    return Journal(header["tracking_uri"], header["experiment_id"], header["run_ids"], ops)


def _encode(op: Op) -> dict[str, Any]:
    if isinstance(op, LogMetrics):
        points = [[m.key, m.value, m.timestamp, m.step] for m in op.metrics]
        return {"op": "LogMetrics", "trial_id": op.trial_id, "metrics": points}
    if isinstance(op, ReopenRun):
        return {"op": "ReopenRun", "trial_id": op.trial_id, "stale_tags": list(op.stale_tags)}
    return {"op": type(op).__name__, **op.__dict__}


def _decode(line: dict[str, Any]) -> Op:
    kind = line.pop("op")
    if kind == "LogMetrics":
        metrics = tuple(Metric(*point) for point in line["metrics"])
        return LogMetrics(line["trial_id"], metrics)
    if kind == "ReopenRun":
        return ReopenRun(line["trial_id"], tuple(line["stale_tags"]))
    types: dict[str, type[CreateRun] | type[EndRun] | type[SetTags] | type[CopyOwnLogs]] = {
        "CopyOwnLogs": CopyOwnLogs,
        "CreateRun": CreateRun,
        "EndRun": EndRun,
        "SetTags": SetTags,
    }
    return types[kind](**line)
