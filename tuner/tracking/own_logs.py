"""What a trial's function logged to MLflow itself, copied into the trial's run.

The trial's process leaves it in the trial's folder of the sweep's storage
(tuner.engine.own_mlflow): one folder per call of the function (a restarted trial
calls it again), in it one numbered part per report that followed new logs and one
when the function ended, each with its params, tags and metric points in one JSON file,
its artifact files beside it (and the files of the models it logged, which
tuner.tracking.own_models makes again), and a `done` marker written last. The tracking writer
copies the parts into the trial's run, in order, just before the run ends, then removes
them from storage: the sweep's store has one writer, and the function's values land in
the run the user browses, beside what tuner logs.

A param the trial's run already has with another value (a searched param the function
logged again, rounded) keeps tuner's value: MLflow refuses to change a param. It is
named in one warning.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from typing import Any

from tuner.defaults import s3_filesystem
from tuner.tracking.own_models import ModelEntry, create_model, model_entry

logger = logging.getLogger(__name__)

FOLDER = "own_mlflow"
PAYLOAD = "logged.json"
ARTIFACTS = "artifacts"
MODELS = "models"  # a part's logged models' files, a folder per model id
DONE = "done"  # a part's last file: a part without it was cut off on its way
# The tracking writer's own batched log_batch (MLflow's limits per request kept there):
# (params, tags, metric points) for the run.
Write = Callable[[list[Any], list[Any], list[Any]], None]


def copy_own_logs(client: Any, run_id: str, location: str, write: Write) -> None:
    """Copy every part found at `location` (a local folder or s3://bucket/path) into
    the run `run_id`, in the order they were sent, its entries through `write`; then
    remove them from storage. Storage that does not answer, or a part that cannot be
    read, is a warning: they are extra to the sweep, whose end does not fail for them."""
    filesystem, folder = _filesystem_at(location)
    try:
        calls = _folders(filesystem, folder)
    except OSError as exc:
        logger.warning("a trial's own MLflow logs at %s could not be listed: %s", folder, exc)
        return
    for call in calls:
        new_ids: dict[str, str] = {}  # the call's model ids -> theirs in the sweep's store
        try:
            parts = _folders(filesystem, call)
            for part in parts:
                _copy_part(client, run_id, filesystem, part, write, new_ids)
            filesystem.delete_dir(call)
        except OSError as exc:
            logger.warning("a trial's own MLflow logs at %s were not all copied: %s", call, exc)
            return
    if calls:
        with contextlib.suppress(OSError):  # its marker too, on S3
            filesystem.delete_dir(folder)


def _folders(filesystem: Any, folder: str) -> list[str]:
    import pyarrow.fs

    listing = filesystem.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True))
    return sorted(info.path for info in listing if info.type == pyarrow.fs.FileType.Directory)


def _copy_part(
    client: Any, run_id: str, filesystem: Any, part: str, write: Write, new_ids: dict[str, str]
) -> None:
    import pyarrow.fs

    if filesystem.get_file_info(f"{part}/{DONE}").type == pyarrow.fs.FileType.NotFound:
        logger.warning("a trial's own MLflow logs at %s were cut off on their way: left "
                       "out", part)  # fmt: skip
        return
    with tempfile.TemporaryDirectory(prefix="tuner-own-logs-") as local:
        pyarrow.fs.copy_files(part, local, filesystem, pyarrow.fs.LocalFileSystem())
        try:
            logged = _read(local)
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("a trial's own MLflow logs at %s could not be read, left "
                           "out: %s", part, exc)  # fmt: skip
            return
        _log(client, run_id, logged, local, write, new_ids)


def _filesystem_at(location: str) -> tuple[Any, str]:
    import pyarrow.fs

    if location.startswith("s3://"):
        return s3_filesystem(), location.removeprefix("s3://")
    return pyarrow.fs.LocalFileSystem(), location


def _read(local: str) -> dict[str, Any] | None:
    """A call's params, tags, points and models (None: it logged only artifacts, or
    nothing), checked for their shape before anything is written."""
    path = os.path.join(local, PAYLOAD)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as stream:
        logged = json.load(stream)
    return {
        "params": {str(k): str(v) for k, v in dict(logged["params"]).items()},
        "tags": {str(k): str(v) for k, v in dict(logged["tags"]).items()},
        "metrics": [_point(*point) for point in logged["metrics"]],
        # A part of an earlier tuner has neither.
        "models": [model_entry(entry) for entry in logged.get("models", [])],
        "model_metrics": [
            (str(model_id), *_point(*point)) for model_id, *point in logged.get("model_metrics", [])
        ],
    }


def _point(key: Any, value: Any, at: Any, step: Any) -> tuple[str, float, int, int]:
    return str(key), float(value), int(at), int(step)


def _log(
    client: Any,
    run_id: str,
    logged: dict[str, Any] | None,
    local: str,
    write: Write,
    new_ids: dict[str, str],
) -> None:
    if logged is not None:
        run = client.get_run(run_id)
        has = run.data.params
        params = {k: v for k, v in logged["params"].items() if has.get(k, v) == v}
        kept = sorted(set(logged["params"]) - set(params))
        if kept:
            logger.warning("run %s keeps its own value of %s: the trial's function logged "
                           "another, and MLflow does not change a param", run_id, kept)  # fmt: skip
        from mlflow.entities import Metric, Param, RunTag  # not in a trial's process

        model: ModelEntry
        for model in logged["models"]:
            files = os.path.join(local, MODELS, model.model_id)
            new_ids[model.model_id] = create_model(
                client, run_id, run.info.experiment_id, model, files
            )
        model_points = [
            Metric(key, value, at, step, model_id=new_ids[model_id])
            for model_id, key, value, at, step in logged["model_metrics"]
            if model_id in new_ids
        ]
        # A point logged with model_id= is also the run's: logged once, as the model's.
        twins = {(m.key, m.value, m.timestamp, m.step) for m in model_points}
        write(
            [Param(k, v) for k, v in params.items() if k not in has],
            [RunTag(k, v) for k, v in logged["tags"].items()],
            [Metric(*point) for point in logged["metrics"] if point not in twins] + model_points,
        )
    artifacts = os.path.join(local, ARTIFACTS)
    if os.path.isdir(artifacts) and os.listdir(artifacts):
        client.log_artifacts(run_id, artifacts)
