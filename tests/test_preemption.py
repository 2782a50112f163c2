"""The preemption watcher drains its Ray node when the metadata service announces a spot
interruption: a fake IMDSv2 server on 127.0.0.1 and a real two-node Ray cluster."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import ray
from ray._private import ray_constants
from ray.cluster_utils import Cluster

from tests.conftest import TUNER, cli_env, each_result
from tests.fake_imds import FakeMetadata

pytestmark = pytest.mark.ray


@pytest.fixture
def metadata() -> Iterator[FakeMetadata]:
    fake = FakeMetadata()
    yield fake
    fake.server.shutdown()


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Cluster, str]]:
    """A head with no CPUs and one 'spot' worker node, both on 127.0.0.1."""
    # Ray would rewrite 127.0.0.1 to the outbound interface's address when connecting.
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False},
    )
    worker = cluster.add_node(num_cpus=1, resources={"spot": 1}, node_ip_address="127.0.0.1")
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield cluster, worker.node_id
    finally:
        ray.shutdown()
        cluster.shutdown()


@ray.remote(num_cpus=0, resources={"spot": 0.01})
def node_of_spot_task() -> str:
    return str(ray.get_runtime_context().get_node_id())


def test_watcher_drains_its_node_on_a_spot_interruption_notice(
    cluster: tuple[Cluster, str], metadata: FakeMetadata
) -> None:
    ray_cluster, worker_id = cluster
    assert ray.get(node_of_spot_task.remote(), timeout=60) == worker_id
    watcher = subprocess.Popen(
        [*TUNER, "preemption-watch", "--address", ray_cluster.address, "--node-id", worker_id,
         "--metadata-url", metadata.url, "--poll-seconds", "0.1"],
        env=cli_env({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        time.sleep(3)  # many polls, all answered 404: no notice, no drain
        assert watcher.poll() is None
        assert ray.get(node_of_spot_task.remote(), timeout=60) == worker_id

        when = datetime.now(timezone.utc) + timedelta(minutes=2)
        metadata.notice = {"action": "terminate", "time": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
        stdout, stderr = watcher.communicate(timeout=120)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, stderr
    assert "spot interruption notice: terminate" in stdout
    assert f"drained node {worker_id} with reason PREEMPTION" in stdout
    # A drained node takes no new work: the task that needs it stays unscheduled.
    with pytest.raises(ray.exceptions.GetTimeoutError):
        ray.get(node_of_spot_task.remote(), timeout=5)


@ray.remote(num_cpus=0, resources={"spot": 0.01})
class TrialOnSpot:
    """A trial's notice listener, on the spot worker."""

    def __init__(self, trial_id: str) -> None:
        from tuner.trainer.notices import NoticeListener

        self.listener = NoticeListener(trial_id, ray.get_runtime_context().get_node_id())

    def noticed(self) -> bool:
        return self.listener.noticed()

    def checkpointed(self) -> None:
        self.listener.saved()


def start_watcher(cluster: Cluster, worker_id: str, metadata: FakeMetadata, grace: float) -> Any:
    """`tuner preemption-watch` for the spot worker; its first line says the trials there
    will hear of a notice (its warnings go to stdout, Ray's noise to stderr)."""
    return subprocess.Popen(
        [*TUNER, "preemption-watch", "--address", cluster.address, "--node-id", worker_id,
         "--metadata-url", metadata.url, "--poll-seconds", "0.1", "--grace-seconds", str(grace)],
        env=cli_env({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def wait_until(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_the_watcher_drains_once_the_nodes_trials_have_checkpointed(
    cluster: tuple[Cluster, str], metadata: FakeMetadata
) -> None:
    ray_cluster, worker_id = cluster
    trials = [TrialOnSpot.remote(f"trial-{i}") for i in range(2)]  # type: ignore[attr-defined]
    watcher = start_watcher(ray_cluster, worker_id, metadata, grace=100)
    try:
        time.sleep(3)  # the watcher is up and the mailbox open; no notice yet
        assert not any(ray.get([trial.noticed.remote() for trial in trials]))
        # The listeners find the mailbox (they look every 10 s until one exists).
        time.sleep(11)
        metadata.post_notice()
        noticed_at = time.monotonic()
        wait_until(lambda: all(ray.get([t.noticed.remote() for t in trials])), "the notice")
        assert time.monotonic() - noticed_at < 5, "each trial heard of it within seconds"
        # One trial has its checkpoint, the other not yet: the node is not drained.
        ray.get(trials[0].checkpointed.remote())
        time.sleep(2)
        assert watcher.poll() is None
        assert ray.get(node_of_spot_task.remote(), timeout=60) == worker_id
        ray.get(trials[1].checkpointed.remote())
        stdout, stderr = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, stderr
    assert "the node's trials have checkpointed" in stdout
    assert f"drained node {worker_id} with reason PREEMPTION" in stdout


def test_a_trial_that_never_checkpoints_holds_the_drain_only_for_the_grace_time(
    cluster: tuple[Cluster, str], metadata: FakeMetadata
) -> None:
    ray_cluster, worker_id = cluster
    silent = TrialOnSpot.remote("silent")  # type: ignore[attr-defined]
    watcher = start_watcher(ray_cluster, worker_id, metadata, grace=4)
    try:
        time.sleep(14)  # the listener has found the mailbox
        metadata.post_notice()
        wait_until(lambda: ray.get(silent.noticed.remote()), "the notice")
        stdout, stderr = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, stderr
    assert "1 trial(s) had not checkpointed after 4 s: draining" in stdout
    assert f"drained node {worker_id} with reason PREEMPTION" in stdout


def test_a_trainable_of_your_own_checkpoints_when_should_checkpoint_says_so(
    cluster: tuple[Cluster, str], metadata: FakeMetadata, tmp_path: Path
) -> None:
    from ray import tune

    from tests.trainables import checkpoints_on_notice

    ray_cluster, worker_id = cluster
    watcher = start_watcher(ray_cluster, worker_id, metadata, grace=100)
    log = tmp_path / "steps.log"

    def notice_at_step_5() -> None:
        wait_until(lambda: log.exists() and "step 5" in log.read_text(), "step 5", 120)
        metadata.post_notice()

    try:
        assert watcher.stdout is not None
        assert "will hear of a spot notice" in watcher.stdout.readline()
        threading.Thread(target=notice_at_step_5, daemon=True).start()
        tuner = tune.Tuner(
            tune.with_resources(checkpoints_on_notice, {"cpu": 1}),
            param_space={"steps": 60, "step_seconds": 0.25, "log": str(log)},
            run_config=tune.RunConfig(storage_path=str(tmp_path / "runs"), verbose=0),
        )
        (result,) = each_result(tuner.fit())
        told, _ = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert result.error is None
    lines = log.read_text().splitlines()
    (checkpointed,) = [line for line in lines if line.startswith("checkpoint")]
    at = int(checkpointed.split()[1])
    # Within a few steps of the notice, once; the watcher drained after it, not before.
    assert 5 < at <= 5 + 20, lines
    assert "the node's trials have checkpointed" in told
    assert f"drained node {worker_id} with reason PREEMPTION" in told
    assert result.checkpoint is not None
    with result.checkpoint.as_directory() as folder:
        assert json.loads(Path(folder, "state.json").read_text()) == {"step": at}


@pytest.mark.bench  # a benchmark's smoke run: opt-in, as test_bench.py's
def test_the_preemption_benchmark_measures_both_policies(tmp_path: Path) -> None:
    # In its own process: it starts a cluster of its own and opts in to token auth.
    done = subprocess.run(
        [sys.executable, "-m", "bench.preemption", "--smoke", "--out", str(tmp_path)],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "preemption-smoke.json").read_text())
    figures = result["epochs"]["1"]
    assert set(figures) == {"per-epoch only", "on notice"}
    # The node went in the second half of an epoch, whose start was the last per-epoch
    # checkpoint: at least that half (50 steps of 10 ms) was trained twice.
    assert figures["per-epoch only"]["median_lost_s"] >= 0.49
    assert figures["on notice"]["median_lost_s"] >= 0
    assert (tmp_path / "preemption-smoke.md").read_text().startswith("| epoch | policy |")
