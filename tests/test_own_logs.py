"""What a trial's function logged to MLflow itself, left in the sweep's storage, copied
into the trial's run by the tracking writer: from S3 (moto's server over HTTP), through
the writer's own SQL process as a long sweep has it, and from a journal once a store
that stopped answering is back; a stopped trial's logs are waited for, not half copied."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pyarrow.fs
import pytest
from mlflow import MlflowClient
from mlflow.entities import RunStatus

from tests.conftest import S3_BUCKET
from tuner.defaults import s3_filesystem
from tuner.tracking.client_process import ClientProcess
from tuner.tracking.journal import read_journal, save_journal
from tuner.tracking.operations import CopyOwnLogs
from tuner.tracking.own_logs import ARTIFACTS, DONE, PAYLOAD, PENDING, copy_own_logs
from tuner.tracking.writer import CreateRun, EndRun, TrackingWriter

FINISHED = RunStatus.to_string(RunStatus.FINISHED)


def leave_logs(filesystem: pyarrow.fs.FileSystem, call: str, *, done: bool = True) -> None:
    """One call's logs as a trial's process leaves them (tuner.engine.own_mlflow)."""
    logged = {
        "params": {"layers": "3", "lr": "0.01000", "optimizer": "adam"},
        "tags": {"data_version": "v2"},
        # More points than one MLflow request takes.
        "metrics": [["train_loss", 1.0 / step, 1_000 + step, step] for step in range(1, 1501)],
    }
    filesystem.create_dir(f"{call}/{ARTIFACTS}/plots", recursive=True)
    with filesystem.open_output_stream(f"{call}/{PAYLOAD}") as out:
        out.write(json.dumps(logged).encode())
    with filesystem.open_output_stream(f"{call}/{ARTIFACTS}/plots/confusion.txt") as out:
        out.write(b"[[9, 1], [0, 10]]")
    with filesystem.open_output_stream(f"{call}/{PENDING}") as out:
        out.write(b"")
    if done:
        with filesystem.open_output_stream(f"{call}/{DONE}") as out:
            out.write(b"")


def assert_copied(client: MlflowClient, run_id: str, tmp_path: Path) -> None:
    run = client.get_run(run_id)
    # The searched lr keeps tuner's value; the function's others are added.
    assert run.data.params == {"lr": "0.01", "layers": "3", "optimizer": "adam"}
    assert run.data.tags["data_version"] == "v2"
    history = client.get_metric_history(run_id, "train_loss")
    assert sorted(p.step for p in history) == list(range(1, 1501))
    confusion = client.download_artifacts(run_id, "plots/confusion.txt", str(tmp_path))
    assert Path(confusion).read_text() == "[[9, 1], [0, 10]]"


@pytest.mark.server
@pytest.mark.parametrize("writer_process", [False, True], ids=["in_driver", "own_process"])
def test_logs_left_on_s3_land_in_the_trials_run_and_leave_the_storage(
    tmp_path: Path, s3_endpoint: str, writer_process: bool
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("own-logs")
    writer = TrackingWriter(ClientProcess(uri) if writer_process else client, experiment_id)
    folder = f"{S3_BUCKET}/{tmp_path.name}/trial_1/own_mlflow"
    filesystem = s3_filesystem()
    leave_logs(filesystem, f"{folder}/a1")
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


def test_a_stopped_trials_logs_are_waited_for_and_unfinished_ones_left(tmp_path: Path) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = client.create_run(client.create_experiment("own-logs")).info.run_id
    client.log_param(run_id, "lr", "0.01")
    filesystem = pyarrow.fs.LocalFileSystem()
    folder = tmp_path / "trial_1" / "own_mlflow"
    # The function still unwinding: its logs are there, `done` comes a moment later.
    leave_logs(filesystem, str(folder / "a1"), done=False)
    finishing = threading.Timer(1.0, lambda: (folder / "a1" / DONE).write_bytes(b""))
    finishing.start()
    started = time.monotonic()
    copy_own_logs(client, run_id, str(folder), wait_s=20)
    assert 0.9 < time.monotonic() - started < 10
    assert_copied(client, run_id, tmp_path)
    assert not folder.exists()  # nothing left of it
    # A call that never finished (its worker lost) is left where it is, not half copied.
    leave_logs(filesystem, str(folder / "a2"), done=False)
    copy_own_logs(client, run_id, str(folder), wait_s=0.5)
    assert (folder / "a2" / PAYLOAD).exists()
    assert len(client.get_metric_history(run_id, "train_loss")) == 1500


def test_a_copy_the_store_missed_is_kept_in_the_journal(tmp_path: Path) -> None:
    op = CopyOwnLogs("trial_1", "s3://sweeps/run/trial_1/own_mlflow")
    path = save_journal(tmp_path, "http://127.0.0.1:5000", "1", {"trial_1": "abc"}, [op])
    assert read_journal(path).ops == [op]
