"""What a trial's function logged to MLflow itself: read from its own store a part at a
time, left in the sweep's storage, and copied into the trial's run by the tracking
writer: from S3 (moto's server over HTTP), through the writer's own SQL process as a
long sweep has it, and from a journal once a store that stopped answering is back. A
part cut off on its way, or one that cannot be read, is left out without a wait."""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlflow
import pyarrow.fs
import pytest
from mlflow import MlflowClient
from mlflow.entities import RunStatus
from mlflow.tracking._tracking_service import utils as tracking_utils

from tests.conftest import S3_BUCKET
from tuner.defaults import s3_filesystem
from tuner.engine.own_mlflow_parts import NewLogs, write_part
from tuner.tracking.client_process import ClientProcess
from tuner.tracking.journal import read_journal, save_journal
from tuner.tracking.operations import CopyOwnLogs
from tuner.tracking.own_logs import DONE, PAYLOAD
from tuner.tracking.writer import CreateRun, EndRun, TrackingWriter

FINISHED = RunStatus.to_string(RunStatus.FINISHED)


def leave_parts(filesystem: pyarrow.fs.FileSystem, call: str, tmp_path: Path) -> None:
    """One call's two parts, as a trial's process leaves them (tuner.engine.own_mlflow):
    the first with params, a tag, 1,000 points and a plot; the second with 500 more
    points and the plot drawn again."""
    from tuner.engine.own_mlflow_parts import Part

    plot = tmp_path / "confusion.txt"
    plot.write_text("[[5, 5], [5, 5]]")
    first = Part(
        params={"layers": "3", "lr": "0.01000", "optimizer": "adam"},
        tags={"data_version": "v2"},
        points=[("train_loss", 1.0 / step, 1_000 + step, step) for step in range(1, 1001)],
        files={"plots/confusion.txt": plot},
    )
    write_part(first, filesystem, f"{call}/00001", tmp_path / "staging")
    plot.write_text("[[9, 1], [0, 10]]")
    second = Part(
        points=[("train_loss", 1.0 / step, 1_000 + step, step) for step in range(1001, 1501)],
        files={"plots/confusion.txt": plot},
    )
    write_part(second, filesystem, f"{call}/00002", tmp_path / "staging")


def assert_copied(client: MlflowClient, run_id: str, tmp_path: Path) -> None:
    run = client.get_run(run_id)
    # The searched lr keeps tuner's value; the function's others are added.
    assert run.data.params == {"lr": "0.01", "layers": "3", "optimizer": "adam"}
    assert run.data.tags["data_version"] == "v2"
    history = client.get_metric_history(run_id, "train_loss")
    assert sorted(p.step for p in history) == list(range(1, 1501))
    confusion = client.download_artifacts(run_id, "plots/confusion.txt", str(tmp_path))
    assert Path(confusion).read_text() == "[[9, 1], [0, 10]]"  # the later part's


@pytest.mark.server
@pytest.mark.parametrize("writer_process", [False, True], ids=["in_driver", "own_process"])
def test_parts_left_on_s3_land_in_the_trials_run_and_leave_the_storage(
    tmp_path: Path, s3_endpoint: str, writer_process: bool
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("own-logs")
    writer = TrackingWriter(ClientProcess(uri) if writer_process else client, experiment_id)
    folder = f"{S3_BUCKET}/{tmp_path.name}/trial_1/own_mlflow"
    filesystem = s3_filesystem()
    leave_parts(filesystem, f"{folder}/a1", tmp_path)
    writer.submit(CreateRun("trial_1", "trial one", {"lr": "0.01"}, {}))
    writer.submit(CopyOwnLogs("trial_1", f"s3://{folder}"))
    writer.submit(EndRun("trial_1", FINISHED, {}))
    writer.flush()
    run_id = writer.run_id("trial_1")
    writer.close()
    assert run_id is not None
    assert_copied(client, run_id, tmp_path)
    assert client.get_run(run_id).info.status == FINISHED
    parent = folder.rsplit("/", 1)[0]  # the folder is gone, its S3 marker too
    listing = filesystem.get_file_info(pyarrow.fs.FileSelector(parent, allow_not_found=True))
    assert [info.path for info in listing] == []


def test_a_part_cut_off_or_unreadable_is_left_out_and_nothing_waits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    writer = TrackingWriter(client, client.create_experiment("own-logs"))
    filesystem = pyarrow.fs.LocalFileSystem()
    folder = tmp_path / "trial_1" / "own_mlflow"
    leave_parts(filesystem, str(folder / "a1"), tmp_path)
    # A third part the worker was killed writing, and one whose file was cut short.
    (folder / "a1" / "00003").mkdir()
    (folder / "a1" / "00003" / PAYLOAD).write_text('{"params": {"late": "1"}}')
    (folder / "a1" / "00004").mkdir()
    (folder / "a1" / "00004" / PAYLOAD).write_text('{"params": {"cut": "1"}, "tags": ')
    (folder / "a1" / "00004" / DONE).write_bytes(b"")
    writer.submit(CreateRun("trial_1", "trial one", {"lr": "0.01"}, {}))
    writer.submit(CopyOwnLogs("trial_1", str(folder)))
    writer.flush()  # raises nothing: no failed write
    run_id = writer.run_id("trial_1")
    writer.close()
    assert run_id is not None
    assert "00003 were cut off on their way: left out" in caplog.text
    assert "00004 could not be read, left out" in caplog.text
    assert_copied(client, run_id, tmp_path)
    assert not folder.exists()  # nothing kept that could be copied later


def test_new_logs_are_read_a_part_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a store MLflow's fluent API wrote, as a trial's function does: pointed there
    by the environment, its artifacts in ./mlruns of the trial's folder."""
    database = tmp_path / "store" / "mlflow.db"
    database.parent.mkdir()
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)  # what set_tracking_uri set
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{database}")
    monkeypatch.chdir(tmp_path)
    logs = NewLogs(database)
    assert not logs.next_part()  # no store yet: nothing
    with mlflow.start_run():
        mlflow.log_param("layers", 3)
        mlflow.set_tag("data_version", "v2")
        mlflow.log_metric("train_loss", 0.5, step=1)
        mlflow.log_text("first", "notes/summary.txt")
        first = logs.next_part()
        mlflow.log_metric("train_loss", float("nan"), step=2)
        mlflow.set_tag("data_version", "v3")
        second = logs.next_part()
        assert not logs.next_part()  # nothing new
        mlflow.log_text("second", "notes/summary.txt")
        mlflow.log_dict({"a": 1}, "config.json")
        third = logs.next_part()
    assert first.params == {"layers": "3"}
    assert first.tags == {"data_version": "v2"}
    assert [(key, value, step) for key, value, _, step in first.points] == [("train_loss", 0.5, 1)]
    assert list(first.files) == ["notes/summary.txt"]
    assert second.params == {} and second.tags == {"data_version": "v3"}
    [(key, value, _, step)] = second.points
    assert key == "train_loss" and math.isnan(value) and step == 2
    assert second.files == {}
    assert sorted(third.files) == ["config.json", "notes/summary.txt"]
    assert third.files["notes/summary.txt"].read_text() == "second"
    assert json.loads(third.files["config.json"].read_text()) == {"a": 1}


def test_a_copy_the_store_missed_is_kept_in_the_journal(tmp_path: Path) -> None:
    op = CopyOwnLogs("trial_1", "s3://sweeps/run/trial_1/own_mlflow")
    path = save_journal(tmp_path, "http://127.0.0.1:5000", "1", {"trial_1": "abc"}, [op])
    assert read_journal(path).ops == [op]
