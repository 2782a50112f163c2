"""What a trial's function logged to its own MLflow store since the last look, as a part.

A trial's function logs into a SQLite store of its own (tuner.engine.own_mlflow). At each
report, and when the function ends, what is new there goes to the sweep's storage as
one numbered part: the params and tags not sent yet, the metric points added since, the
artifact files new or changed, and the models logged since (`mlflow.<flavor>.log_model`:
MLflow 3 logged models, with their files, params, tags and metrics). Sent before the
report reaches Ray, a part is in storage before the driver can stop the trial for that
report: a trial that ASHA stops loses none of what it logged up to there, and the
driver never waits for it.

The store is read with SQL, not MLflow's client: small queries on MLflow's own tables
(`runs`, `params`, `tags`, `metrics`, `logged_models` and theirs), the points since the
last look by rowid, about a millisecond where the client takes tens. An unexpected
schema is an error the caller reports once.
"""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from tuner.engine.hidden_output import SHOWN_INSTEAD, hidden
from tuner.tracking.own_logs import ARTIFACTS, DONE, MODELS, PAYLOAD

HIDE_IN_FILES_UP_TO = 64 * 2**20
READY = 2  # LoggedModelStatus.READY in MLflow's `logged_models.status`: the files are all there


@dataclass
class LoggedModel:
    """A model the function logged (`mlflow.pytorch.log_model`), as the driver re-creates
    it in the sweep's store: its ids here are named in its MLmodel file, rewritten there."""

    model_id: str
    name: str
    model_type: str | None
    source_run_id: str
    location: str  # its artifact location in the trial's store
    step: int  # the run's output step
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    folder: Path | None = None  # its files, on this machine
    registered_as: list[str] = field(default_factory=list)  # `registered_model_name=`


@dataclass
class Part:
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    points: list[tuple[str, float, int, int]] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)  # artifact path -> local file
    models: list[LoggedModel] = field(default_factory=list)
    # (model id, key, value, timestamp, step): points logged with `model_id=`, of a model
    # in this part or an earlier one
    model_points: list[tuple[str, str, float, int, int]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.params or self.tags or self.points or self.files or self.models
            or self.model_points
        )  # fmt: skip


class NewLogs:
    """What one call of a function logged, read a part at a time."""

    def __init__(self, database: Path) -> None:
        self._database = database
        self._last_point = 0  # rowid of the last metric point sent
        self._params: dict[str, str] = {}
        self._tags: dict[str, str] = {}
        self._files: dict[str, tuple[int, int]] = {}  # artifact path -> (mtime, size) sent
        self._models: set[str] = set()  # ids of the models sent
        self._last_model_point = 0
        self._waiting: list[tuple[str, str, float, int, int]] = []  # of a model not sent yet
        self._has_models = False  # MLflow 3's `logged_models` table seen (a 2.x store has none)
        self.artifact_folders: list[Path] = []  # the runs' and models' local folders, seen

    def next_part(self) -> Part:
        """What is new since the last part (empty before the store exists)."""
        part = Part()
        if not self._database.exists():
            return part
        with sqlite3.connect(f"file:{self._database}?mode=ro", uri=True) as store:
            runs = store.execute(
                "SELECT run_uuid, name, artifact_uri FROM runs ORDER BY start_time, run_uuid"
            ).fetchall()
            if not runs:  # MLflow imported, nothing logged yet: one query a report
                return part
            for key, value in store.execute("SELECT key, value FROM params"):
                if key not in self._params:
                    part.params[key] = self._params[key] = str(value)
            for key, value in store.execute("SELECT key, value FROM tags"):
                if not key.startswith("mlflow.") and self._tags.get(key) != value:
                    part.tags[key] = self._tags[key] = str(value)
            rows = store.execute(
                "SELECT rowid, key, value, timestamp, step, is_nan FROM metrics "
                "WHERE rowid > ? ORDER BY rowid",
                (self._last_point,),
            ).fetchall()
            self._has_models = self._has_models or _has_table(store, "logged_models")
            if self._has_models:
                self._new_models(store, part)
        for rowid, key, value, at, step, is_nan in rows:
            part.points.append((key, math.nan if is_nan else float(value), int(at), int(step)))
            self._last_point = rowid
        for index, (run_uuid, name, artifact_uri) in enumerate(runs):
            # The first run's artifacts at the root of the trial's, another's under its name.
            below = "" if index == 0 else f"{name or run_uuid}/"
            self._changed_files(_local_path(artifact_uri), below, part)
        return part

    def _new_models(self, store: sqlite3.Connection, part: Part) -> None:
        """The models finished since the last look, and the points logged to models."""
        rows = store.execute(
            "SELECT model_id, name, model_type, source_run_id, artifact_location "
            "FROM logged_models WHERE status = ? ORDER BY creation_timestamp_ms, model_id",
            (READY,),
        ).fetchall()
        for model_id, name, model_type, source_run_id, location in rows:
            if model_id in self._models:
                continue
            self._models.add(model_id)
            output = store.execute(
                "SELECT step FROM inputs WHERE source_type = 'RUN_OUTPUT' AND destination_id = ?",
                (model_id,),
            ).fetchone()
            folder = _local_path(location)
            if folder is not None and folder.parent not in self.artifact_folders:
                self.artifact_folders.append(folder.parent)  # models/<id>: its files in there
            part.models.append(LoggedModel(
                model_id, str(name), model_type, str(source_run_id or ""), str(location or ""),
                int(output[0]) if output else 0,
                params={str(k): str(v) for k, v in store.execute(
                    "SELECT param_key, param_value FROM logged_model_params WHERE model_id = ?",
                    (model_id,))},
                tags={str(k): str(v) for k, v in store.execute(
                    "SELECT tag_key, tag_value FROM logged_model_tags WHERE model_id = ?",
                    (model_id,)) if not str(k).startswith("mlflow.")},
                folder=folder,
                registered_as=[str(registered) for (registered,) in store.execute(
                    "SELECT DISTINCT name FROM model_versions WHERE source = ? ORDER BY name",
                    (f"models:/{model_id}",))],
            ))  # fmt: skip
        points = store.execute(
            "SELECT rowid, model_id, metric_name, metric_value, metric_timestamp_ms, "
            "metric_step FROM logged_model_metrics WHERE rowid > ? ORDER BY rowid",
            (self._last_model_point,),
        ).fetchall()
        for rowid, model_id, key, value, at, step in points:
            self._waiting.append((str(model_id), str(key), float(value), int(at), int(step)))
            self._last_model_point = rowid
        part.model_points = [point for point in self._waiting if point[0] in self._models]
        self._waiting = [point for point in self._waiting if point[0] not in self._models]

    def _changed_files(self, folder: Path | None, below: str, part: Part) -> None:
        if folder is None or not folder.is_dir():
            return
        if folder not in self.artifact_folders:
            self.artifact_folders.append(folder)
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.is_symlink():
                continue
            stat = path.stat()
            name = below + path.relative_to(folder).as_posix()
            if self._files.get(name) != (stat.st_mtime_ns, stat.st_size):
                self._files[name] = (stat.st_mtime_ns, stat.st_size)
                part.files[name] = path


def write_part(
    part: Part, filesystem: Any, destination: str, staging: Path, secrets: Sequence[str] = ()
) -> None:
    """`part` in storage at `destination`, its `done` marker written last (a part cut
    off on its way is left out by the driver). Each of `secrets` (the sweep's, longest
    first) is `<secret>` in its params, tags and artifact files: code that logs its
    whole config (`mlflow.log_params(config)`) logs the token tuner put back into it."""
    import pyarrow.fs

    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    logged = {
        "params": {k: hidden(v, secrets) for k, v in part.params.items()},
        "tags": {k: hidden(v, secrets) for k, v in part.tags.items()},
        "metrics": part.points,
        "models": [_model_entry(model, secrets) for model in part.models],
        "model_metrics": part.model_points,
    }
    (staging / PAYLOAD).write_text(json.dumps(logged), encoding="utf-8")
    for name, path in part.files.items():
        _stage_file(path, staging / ARTIFACTS / name, secrets)
    for model in part.models:
        if model.folder is not None and model.folder.is_dir():
            for path in sorted(model.folder.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    below = path.relative_to(model.folder)
                    _stage_file(path, staging / MODELS / model.model_id / below, secrets)
    filesystem.create_dir(destination, recursive=True)
    pyarrow.fs.copy_files(str(staging), destination, pyarrow.fs.LocalFileSystem(), filesystem)
    with filesystem.open_output_stream(f"{destination}/{DONE}") as out:
        out.write(b"")
    shutil.rmtree(staging, ignore_errors=True)


def _model_entry(model: LoggedModel, secrets: Sequence[str]) -> dict[str, Any]:
    return {
        "model_id": model.model_id,
        "name": model.name,
        "model_type": model.model_type,
        "source_run_id": model.source_run_id,
        "location": model.location,
        "step": model.step,
        "params": {k: hidden(v, secrets) for k, v in model.params.items()},
        "tags": {k: hidden(v, secrets) for k, v in model.tags.items()},
        "registered_as": model.registered_as,
    }


def _stage_file(path: Path, target: Path, secrets: Sequence[str]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    _hide_in_file(target, secrets)


def _has_table(store: sqlite3.Connection, name: str) -> bool:
    found = store.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return found.fetchone() is not None


def _hide_in_file(path: Path, secrets: Sequence[str]) -> None:
    """The secrets' bytes replaced in a staged artifact: text (a config dumped as JSON or
    YAML) and binary alike. A file over HIDE_IN_FILES_UP_TO is copied as it is: one the
    size of a model's weights is not read into memory for a token."""
    if not secrets or path.stat().st_size > HIDE_IN_FILES_UP_TO:
        return
    content = original = path.read_bytes()
    for secret in secrets:
        content = content.replace(secret.encode(), SHOWN_INSTEAD.encode())
    if content != original:
        path.write_bytes(content)


def _local_path(artifact_uri: str | None) -> Path | None:
    """A run's artifact folder when it is on this machine (MLflow's default for a
    SQLite store: ./mlruns of the trial's working folder)."""
    if not artifact_uri:
        return None
    parsed = urlparse(artifact_uri)
    if parsed.scheme not in ("", "file"):
        return None
    return Path(unquote(parsed.path) if parsed.scheme else artifact_uri)


def remove_local_artifacts(folders: list[Path]) -> None:
    """After the last part: the runs' artifacts are in storage, not kept twice."""
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
