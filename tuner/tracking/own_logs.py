"""What a trial's function logged to MLflow itself, copied into the trial's run.

The trial's process leaves it in the trial's folder of the sweep's storage
(tuner.engine.own_mlflow): one folder per call of the function (a restarted trial
calls it again), each with the params, tags and metric points in one JSON file, the
artifacts beside it, and a `done` marker written last. The tracking writer copies each
into the trial's run just before the run ends, then removes it from storage: the
sweep's store has one writer, and the function's values land in the run the user
browses, beside what tuner logs.

A param the trial's run already has with another value (a searched param the function
logged again, rounded) keeps tuner's value: MLflow refuses to change a param. It is
named in one warning.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from typing import Any

from tuner.defaults import s3_filesystem

logger = logging.getLogger(__name__)

FOLDER = "own_mlflow"
PAYLOAD = "logged.json"
ARTIFACTS = "artifacts"
PENDING = "pending"  # the function has a run: wait for `done`
DONE = "done"
# How long the writer waits for a stopped trial's function to unwind and leave its logs.
WAIT_S = 30.0
# MLflow's log_batch limits, per request: params, tags, metric points.
_PARAMS_PER_BATCH, _TAGS_PER_BATCH, _POINTS_PER_BATCH = 100, 100, 1000


def copy_own_logs(client: Any, run_id: str, location: str, wait_s: float = WAIT_S) -> None:
    """Copy every call's logs found at `location` (a local folder or s3://bucket/path)
    into the run `run_id`, each removed from storage once copied."""
    import pyarrow.fs

    filesystem, folder = _filesystem_at(location)
    listing = filesystem.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True))
    calls = sorted(info.path for info in listing if info.type == pyarrow.fs.FileType.Directory)
    left = False
    for call in calls:
        if not _wait_done(filesystem, call, wait_s):
            logger.warning("a trial's own MLflow logs at %s were not complete in %.0f s: "
                           "left there, not copied", call, wait_s)  # fmt: skip
            left = True
            continue
        with tempfile.TemporaryDirectory(prefix="tuner-own-logs-") as local:
            pyarrow.fs.copy_files(call, local, filesystem, pyarrow.fs.LocalFileSystem())
            _log(client, run_id, local)
        filesystem.delete_dir(call)
    if calls and not left:
        filesystem.delete_dir(folder)  # its marker too, on S3: the trial's folder as before


def _filesystem_at(location: str) -> tuple[Any, str]:
    import pyarrow.fs

    if location.startswith("s3://"):
        return s3_filesystem(), location.removeprefix("s3://")
    return pyarrow.fs.LocalFileSystem(), location


def _wait_done(filesystem: Any, call: str, wait_s: float) -> bool:
    """True once `call` is complete: its `done` marker is there. A call without its
    `pending` marker either is done or left nothing: no wait for it."""
    import pyarrow.fs

    deadline = time.monotonic() + wait_s
    while True:
        done, pending = filesystem.get_file_info([f"{call}/{DONE}", f"{call}/{PENDING}"])
        if done.type != pyarrow.fs.FileType.NotFound:
            return True
        if pending.type == pyarrow.fs.FileType.NotFound or time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def _log(client: Any, run_id: str, local: str) -> None:
    path = os.path.join(local, PAYLOAD)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as stream:
            logged = json.load(stream)
        has = client.get_run(run_id).data.params
        params = {k: str(v) for k, v in logged["params"].items() if has.get(k, str(v)) == str(v)}
        kept = sorted(set(logged["params"]) - set(params))
        if kept:
            logger.warning("run %s keeps its own value of %s: the trial's function logged "
                           "another, and MLflow does not change a param", run_id, kept)  # fmt: skip
        from mlflow.entities import Metric, Param, RunTag  # not in a trial's process

        new_params = [Param(k, v) for k, v in params.items() if k not in has]
        tags = [RunTag(k, str(v)) for k, v in logged["tags"].items()]
        points = [Metric(key, value, int(at), int(step))
                  for key, value, at, step in logged["metrics"]]  # fmt: skip
        for start in range(0, len(new_params), _PARAMS_PER_BATCH):
            client.log_batch(run_id, params=new_params[start : start + _PARAMS_PER_BATCH])
        for start in range(0, len(tags), _TAGS_PER_BATCH):
            client.log_batch(run_id, tags=tags[start : start + _TAGS_PER_BATCH])
        for start in range(0, len(points), _POINTS_PER_BATCH):
            client.log_batch(run_id, metrics=points[start : start + _POINTS_PER_BATCH])
    artifacts = os.path.join(local, ARTIFACTS)
    if os.path.isdir(artifacts) and os.listdir(artifacts):
        client.log_artifacts(run_id, artifacts)
