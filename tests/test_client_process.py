"""The tracking writer's MLflow client in a child process (tracking.client_process),
against a real SQLite store: what it writes a user reads back; a write MLflow refuses
stays one failed write; a child that dies sends the writes to the journal, from which
`tuner sync` makes them; and the child never outlives its driver."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.entities import Metric, RunStatus

from tests.conftest import run_cli
from tuner.tracking.client_process import (
    MODULE_NAME,
    ClientProcess,
    on_network_file_system,
)
from tuner.tracking.client_settings import in_process_sql
from tuner.tracking.sync import sync_journal
from tuner.tracking.writer import (
    WRITER_PROCESS_FROM_TRIALS,
    CreateRun,
    EndRun,
    LogMetrics,
    TrackingError,
    TrackingOffline,
    TrackingWriter,
)

FINISHED = RunStatus.to_string(RunStatus.FINISHED)


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module: creating one runs MLflow's migrations (seconds)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()
    return uri


def writer_children() -> list[psutil.Process]:
    return [
        child for child in psutil.Process().children() if MODULE_NAME in " ".join(child.cmdline())
    ]


def one_trial(writer: TrackingWriter, trial_id: str) -> None:
    writer.submit(CreateRun(trial_id, f"run {trial_id}", {"lr": "0.1"}, {"role": "t"}))
    points = tuple(Metric("loss", 1.0 / step, 1_000 + step, step) for step in range(1, 4))
    writer.submit(LogMetrics(trial_id, points))
    writer.submit(EndRun(trial_id, FINISHED, {"tuner.done": "yes"}))


def test_only_database_stores_get_a_child() -> None:
    assert in_process_sql("sqlite:///mlflow.db")
    assert in_process_sql("postgresql+psycopg://tuner@db/mlflow")
    assert not in_process_sql("http://127.0.0.1:5000")
    assert not in_process_sql("file:///tmp/mlruns")


def test_a_store_on_a_network_file_system_is_known_by_the_mount_table(tmp_path: Path) -> None:
    # SQLite's WAL mode needs shared memory, which NFS and SMB do not give: there the
    # child keeps SQLite's classic journal.
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/vda1 / ext4 rw 0 0\n"
        "server:/export /mnt/shared nfs4 rw 0 0\n"
        "/dev/vdb1 /mnt/shared/local\\040disk ext4 rw 0 0\n"
    )
    assert on_network_file_system(Path("/mnt/shared/sweeps/mlflow.db"), mounts)
    assert not on_network_file_system(Path("/mnt/shared/local disk/mlflow.db"), mounts)
    assert not on_network_file_system(Path("/home/me/mlflow.db"), mounts)
    assert not on_network_file_system(Path("/mnt/sharedx/mlflow.db"), mounts)
    assert not on_network_file_system(Path("/home/me/mlflow.db"), tmp_path / "no-such-table")


def test_a_sweep_of_few_trials_writes_from_the_driver(tracking_uri: str) -> None:
    # A child's start costs more than a dozen trials' writes: none is started.
    client = MlflowClient(tracking_uri)
    writer = TrackingWriter.for_store(client, client.create_experiment("few"), trials=12)
    try:
        assert writer_children() == []
        one_trial(writer, "trial_f")
        writer.flush()
    finally:
        writer.close()
    assert client.get_run(writer.run_id("trial_f") or "").info.status == FINISHED


def test_a_database_store_is_written_by_a_child_and_reads_back_whole(tracking_uri: str) -> None:
    client = MlflowClient(tracking_uri)
    writer = TrackingWriter.for_store(client, client.create_experiment("whole"), trials=1000)
    children = writer_children()
    assert len(children) == 1
    # The URI (which may carry a database password) is not in the child's arguments,
    # which any user of the machine can list.
    assert tracking_uri.removeprefix("sqlite:///") not in " ".join(children[0].cmdline())
    one_trial(writer, "trial_a")
    writer.flush()
    writer.close()
    assert writer_children() == []  # closing the writer ends its child

    run = client.get_run(writer.run_id("trial_a") or "")
    assert run.info.run_name == "run trial_a"
    assert run.info.status == FINISHED
    assert run.data.params == {"lr": "0.1"}
    assert run.data.tags["tuner.done"] == "yes"
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(p.step, p.value) for p in history] == [(1, 1.0), (2, 0.5), (3, 1.0 / 3)]


def test_a_write_mlflow_refuses_is_a_failed_write_and_the_store_stays_up(
    tracking_uri: str,
) -> None:
    client = MlflowClient(tracking_uri)
    writer = TrackingWriter.for_store(client, client.create_experiment("refused"), trials=1000)
    try:
        writer.adopt("ghost", "0" * 32)  # a run id the store has never had
        writer.submit(LogMetrics("ghost", (Metric("loss", 1.0, 1, 1),)))
        with pytest.raises(TrackingError, match=f"Run with id={'0' * 32} not found"):
            writer.flush()
        one_trial(writer, "trial_b")  # the next trial is still written, not journaled
        writer.flush()
    finally:
        writer.close()
    assert client.get_run(writer.run_id("trial_b") or "").info.status == FINISHED


def test_a_dead_child_sends_the_writes_to_the_journal_and_sync_makes_them(
    tracking_uri: str, tmp_path: Path
) -> None:
    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("child-killed")
    writer = TrackingWriter(ClientProcess(tracking_uri), experiment_id, journal_dir=tmp_path)
    try:
        one_trial(writer, "trial_c")
        writer.flush()
        for child in writer_children():
            child.kill()
            child.wait(10)
        one_trial(writer, "trial_d")
        with pytest.raises(TrackingOffline, match="writer process ended") as offline:
            writer.flush()
    finally:
        writer.close()
    journals = list(tmp_path.glob("*.jsonl"))
    assert len(journals) == 1 and str(journals[0]) in str(offline.value)

    assert sync_journal(journals[0]) == 3
    runs = client.search_runs([experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["run trial_c", "run trial_d"]
    assert {r.info.status for r in runs} == {FINISHED}


def test_the_child_exits_when_its_driver_is_killed(tracking_uri: str) -> None:
    driver = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import os, signal
            from tuner.tracking.client_process import ClientProcess
            ClientProcess({tracking_uri!r})
            print(os.getpid(), flush=True)
            signal.pause()
        """)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert driver.stdout is not None
    driver.stdout.readline()
    children = psutil.Process(driver.pid).children()
    assert len(children) == 1
    driver.kill()
    driver.wait(10)
    children[0].wait(20)  # raises if the child is still there after 20 s
    assert not children[0].is_running()


def test_once_the_writer_closes_the_database_file_alone_holds_every_trial(
    tmp_path: Path,
) -> None:
    # The child writes in WAL mode; a user who copies mlflow.db without mlflow.db-wal,
    # while the driver (a notebook, say) lives on, must still find every trial's run.
    database = tmp_path / "mlflow.db"
    script = textwrap.dedent(f"""
        import signal
        from mlflow import MlflowClient
        from tuner.tracking.writer import CreateRun, EndRun, TrackingWriter
        client = MlflowClient("sqlite:///{database}")
        experiment_id = client.create_experiment("folded")
        writer = TrackingWriter.for_store(client, experiment_id, trials=1000)
        for n in range(20):
            writer.submit(CreateRun(f"t{{n}}", f"trial {{n}}", {{"n": str(n)}}, {{}}))
            writer.submit(EndRun(f"t{{n}}", "FINISHED", {{}}))
        writer.flush()
        writer.close()
        print("closed", flush=True)
        signal.pause()
    """)
    driver = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert driver.stdout is not None
        assert driver.stdout.readline().strip() == "closed"
        copy = tmp_path / "copy"
        copy.mkdir()
        shutil.copy(database, copy / "mlflow.db")
    finally:
        driver.kill()
        driver.wait(10)

    client = MlflowClient(f"sqlite:///{copy / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("folded")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    assert sorted(r.info.run_name for r in runs) == sorted(f"trial {n}" for n in range(20))
    assert {r.info.status for r in runs} == {FINISHED}


@pytest.mark.e2e
def test_a_long_sweep_through_the_cli_lands_whole_in_the_default_store(tmp_path: Path) -> None:
    trials = WRITER_PROCESS_FROM_TRIALS + 20  # enough that the writer uses its child
    sweep = {
        "name": "many-null-trials",
        "trainable": "bench.workload:no_op",  # reports score = x, at once
        "metric": "score",
        "mode": "max",
        "num_samples": trials,
        "searcher": {"kind": "random", "seed": 0},
        "max_concurrent_trials": 2,
        "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    process = run_cli("run", "sweep.yaml", "--storage", str(tmp_path / "runs"), cwd=tmp_path)
    assert process.returncode == 0, process.stderr

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("many-null-trials")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    children = [r for r in runs if r.data.tags.get("tuner.role") == "trial"]
    assert len(children) == trials
    assert {r.info.status for r in children} == {FINISHED}
    assert all(float(r.data.params["x"]) == r.data.metrics["score"] for r in children)
    best = max(r.data.metrics["score"] for r in children)
    assert f"score = {best:.6g}" in process.stdout
    left = [p for p in psutil.process_iter(["cmdline"]) if MODULE_NAME in str(p.info["cmdline"])]
    assert left == []  # the writer's child ended with the command
