"""Sweeps on a real multi-node Ray cluster through the Jobs API, checkpoints on S3.

The parts are real and all on 127.0.0.1: a Ray head with no CPUs and its dashboard
(the Jobs API), two 1-CPU worker nodes, token auth on; a `mlflow server` on PostgreSQL;
moto's S3 server over HTTP. The tests act as a user: `tuner submit/status/logs/stop/resume`, and
they kill a worker node (a spot preemption) and the driver (a lost head process).

The failure stories are `heavy` (a minute to three each, about 8 minutes together):
`python -m pytest -m heavy` runs them; the default run, CI's, has the submitted sweep,
stop and resume, and the refused token and input.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import boto3
import pytest
import torch
import yaml
from mlflow import MlflowClient
from moto.server import ThreadedMotoServer
from ray._private import ray_constants
from ray._private.node import Node

# ray/_raylet.pyi declares only the ids and ObjectRef; the compiled module has these too.
from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]
from ray.cluster_utils import Cluster
from ray.job_submission import JobSubmissionClient
from ray.util.state import list_placement_groups

from bench.servers import free_port, new_database, running_mlflow_server
from tests.conftest import TUNER, cli_env, run_cli
from tests.fake_imds import FakeMetadata
from tuner.cli.common import amount
from tuner.cluster.preemption import Notice, drain_with_ray
from tuner.trainer.loop import run_epochs

pytestmark = pytest.mark.e2e

BUCKET = "sweeps"
MLFLOW_ARTIFACTS = "mlflow"

TRAINABLE = textwrap.dedent(
    """
    import json
    import tempfile
    import time
    from pathlib import Path

    import ray
    from ray import tune


    def fit(config: dict) -> None:
        \"\"\"Checkpoints every epoch; logs each epoch it runs to a file the test reads.\"\"\"
        epoch = 0
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as folder:
                epoch = json.loads(Path(folder, "state.json").read_text())["epoch"]
        ran = Path(config["log_dir"], tune.get_context().get_trial_id())
        while epoch < config["epochs"]:
            epoch += 1
            time.sleep(config["epoch_seconds"])
            with ran.open("a") as log:
                log.write(f"{epoch} {ray.get_runtime_context().get_node_id()}\\n")
            with tempfile.TemporaryDirectory() as folder:
                Path(folder, "state.json").write_text(json.dumps({"epoch": epoch}))
                tune.report(
                    {"epoch": epoch, "score": config["x"] * epoch},
                    checkpoint=tune.Checkpoint.from_directory(folder),
                )
            # A test that acts on running trials holds them here until it lets them go.
            while epoch == config.get("hold_after") and not Path(config["release"]).exists():
                time.sleep(0.1)
    """
)


@dataclass
class RayCluster:
    cluster: Cluster
    jobs_url: str
    token: str
    s3_endpoint: str
    tracking_uri: str
    workers: list[Any]

    def env(self, **extra: str) -> dict[str, str]:
        """A user's shell pointed at the cluster."""
        return {"RAY_ADDRESS": self.jobs_url, "RAY_AUTH_TOKEN": self.token, **extra}


def refresh_ray_auth() -> None:
    """Ray reads its auth mode at import and caches the first token it loads."""
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def add_worker(cluster: Cluster) -> Any:
    """A 1-CPU worker node. Nodes on one machine share a session folder; each needs its
    own runtime-env folder, or one node's clean-up deletes the job's working directory
    under another's feet (separate machines never share it)."""
    return cluster.add_node(
        num_cpus=1,
        node_ip_address="127.0.0.1",
        runtime_env_dir_name=f"runtime_resources_{secrets.token_hex(4)}",
    )


@pytest.fixture(scope="module")
def ray_cluster(
    tmp_path_factory: pytest.TempPathFactory, postgres_uri: str
) -> Iterator[RayCluster]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request
    with pytest.MonkeyPatch.context() as patch, ExitStack() as stack:
        s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
        s3.start()
        endpoint = f"http://127.0.0.1:{s3._port}"
        token = secrets.token_hex(16)
        # Every Ray process inherits these: the nodes' S3 access (an instance role on
        # AWS), token auth, loopback only, and the `tuner` command on the head's PATH.
        for key, value in {
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": token,
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }.items():
            patch.setenv(key, value)
        patch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
        refresh_ray_auth()  # this process starts the nodes
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        # The tracking server keeps artifacts in the same bucket (proxied artifacts): the
        # nodes reach S3 for checkpoints only, clients reach MLflow only. Its runs are in
        # PostgreSQL, as on the infra's head node.
        mlflow_root = tmp_path_factory.mktemp("mlflow-s3")
        mlflow_server = stack.enter_context(
            running_mlflow_server(
                mlflow_root,
                f"s3://{BUCKET}/{MLFLOW_ARTIFACTS}",
                env={"MLFLOW_S3_ENDPOINT_URL": endpoint},
                backend_store_uri=new_database(postgres_uri, "cluster"),
            )
        )
        dashboard_port = free_port()
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 0,  # the driver's node: trials run on the workers only
                "node_ip_address": "127.0.0.1",
                "include_dashboard": True,
                "dashboard_host": "127.0.0.1",
                "dashboard_port": dashboard_port,
                "runtime_env_dir_name": "runtime_resources_head",
            },
        )
        workers = [add_worker(cluster) for _ in range(2)]
        jobs_api_accepts_jobs(f"http://127.0.0.1:{dashboard_port}")
        try:
            yield RayCluster(
                cluster=cluster,
                jobs_url=f"http://127.0.0.1:{dashboard_port}",
                token=token,
                s3_endpoint=endpoint,
                tracking_uri=mlflow_server,
                workers=workers,
            )
        finally:
            cluster.shutdown()
            s3.stop()
    refresh_ray_auth()  # back to what the other test modules expect


def jobs_api_accepts_jobs(url: str, timeout_s: float = 120) -> None:
    """A head node's Jobs API answers before its agent can take jobs ("No available agent
    to submit job, please try again later"): wait as a user's cluster is waited for
    before anyone submits to it, by submitting a job that does nothing."""
    client = JobSubmissionClient(url)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.submit_job(entrypoint="true")
            return
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(1)


def write_project(root: Path, name: str, **overrides: Any) -> Path:
    """A user's project folder: their trainable and a sweep file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "cluster_trial.py").write_text(TRAINABLE)
    (root / "logs").mkdir(exist_ok=True)
    spec = {
        "name": name,
        "trainable": "cluster_trial:fit",
        "metric": "score",
        "mode": "max",
        "num_samples": 4,
        "searcher": {"kind": "random", "seed": 0},
        "max_concurrent_trials": 2,
        "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "config": {"epochs": 4, "epoch_seconds": 0.2, "log_dir": str(root / "logs")},
    }
    spec.update(overrides)
    (root / "sweep.yaml").write_text(yaml.safe_dump(spec))
    return root / "sweep.yaml"


def tuner(cluster: RayCluster, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=project, env=cluster.env(), timeout=300)


def submit(cluster: RayCluster, project: Path) -> None:
    storage = f"s3://{BUCKET}/sweeps"
    done = tuner(
        cluster, project, "submit", "sweep.yaml",
        "--storage", storage, "--tracking-uri", cluster.tracking_uri,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "submitted sweep" in done.stdout


def sweep_status(cluster: RayCluster, project: Path, sweep: str) -> list[dict[str, Any]]:
    done = tuner(cluster, project, "status", sweep, "--json")
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def wait_for(
    condition: Callable[[], Any], what: str, timeout: float = 600, every: float = 0.5
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def wait_until_job_ends(cluster: RayCluster, project: Path, sweep: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        latest = sweep_status(cluster, project, sweep)[-1]
        return latest if latest["status"] in ("SUCCEEDED", "FAILED", "STOPPED") else None

    return dict(wait_for(ended, f"the job of {sweep} to end", every=1.0))


def assert_succeeded(cluster: RayCluster, project: Path, final: dict[str, Any]) -> None:
    if final["status"] != "SUCCEEDED":
        logs = tuner(cluster, project, "logs", final["job"]).stdout
        raise AssertionError(f"job {final['job']} {final['status']}:\n{logs[-3000:]}")


def epochs_run(project: Path) -> dict[str, list[tuple[int, str]]]:
    """Each trial's (epoch, node id) in the order they ran, from the trainable's own log."""
    return {
        log.name: [
            (int(epoch), node) for epoch, node in map(str.split, log.read_text().splitlines())
        ]
        for log in (project / "logs").iterdir()
    }


def trial_runs(tracking_uri: str, sweep: str) -> list[Any]:
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(sweep)
    assert experiment is not None
    return list(client.search_runs([experiment.experiment_id], "tags.`tuner.role` = 'trial'"))


def sweep_runs(tracking_uri: str, sweep: str) -> list[Any]:
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(sweep)
    assert experiment is not None
    return list(client.search_runs([experiment.experiment_id], "tags.`tuner.role` = 'sweep'"))


def logged_steps(tracking_uri: str, run_id: str, metric: str = "score") -> list[int]:
    history = MlflowClient(tracking_uri).get_metric_history(run_id, metric)
    return sorted(point.step for point in history)


def s3_keys(cluster: RayCluster, prefix: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=cluster.s3_endpoint)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def test_submitted_sweep_runs_on_the_cluster_with_checkpoints_on_s3(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    write_project(project, "cluster-submit")
    submit(ray_cluster, project)

    final = wait_until_job_ends(ray_cluster, project, "cluster-submit")
    assert_succeeded(ray_cluster, project, final)
    assert final["trials"] == 4
    assert final["by_state"] == {"finished": 4}
    scores = [
        run.data.metrics["score"] for run in trial_runs(ray_cluster.tracking_uri, "cluster-submit")
    ]
    assert final["best_value"] == pytest.approx(max(scores))

    shown = tuner(ray_cluster, project, "status", "cluster-submit")
    assert shown.returncode == 0, shown.stderr
    runs = trial_runs(ray_cluster.tracking_uri, "cluster-submit")
    cpu_hours = sum(run.data.metrics["cpu_hours"] for run in runs)
    assert final["held"]["cpu_hours"] == pytest.approx(cpu_hours)
    assert shown.stdout.strip() == (
        f"cluster-submit  job {final['job']} (run): SUCCEEDED; 4 trials (4 finished); "
        f"best score = {max(scores):.6g} (trial {final['best_trial']}); "
        f"held {amount(cpu_hours)} CPU-hours, 0 GPU-hours by the trials that ended"
    )

    # The driver ran on the head node, never on a (spot) worker.
    jobs = JobSubmissionClient(ray_cluster.jobs_url, headers={
        "Authorization": f"Bearer {ray_cluster.token}"
    })  # fmt: skip
    info = jobs.get_job_info(final["job"])
    # Cluster.__init__ sets head_node to None, unannotated, so mypy reads it as always None.
    head = cast("Node | None", ray_cluster.cluster.head_node)
    assert head is not None
    assert info.driver_node_id == head.node_id

    # Every trial in MLflow under one finished parent, every epoch once.
    (parent,) = sweep_runs(ray_cluster.tracking_uri, "cluster-submit")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["tuner.submission_id"] == final["job"]
    runs = trial_runs(ray_cluster.tracking_uri, "cluster-submit")
    assert len(runs) == 4
    for run in runs:
        assert run.info.status == "FINISHED"
        assert logged_steps(ray_cluster.tracking_uri, run.info.run_id) == [1, 2, 3, 4]

    # Experiment state and every trial's checkpoints are objects in the bucket.
    experiment = parent.data.tags["tuner.experiment_path"]
    assert experiment.startswith(f"s3://{BUCKET}/sweeps/cluster-submit/run-")
    keys = s3_keys(ray_cluster, experiment.removeprefix(f"s3://{BUCKET}/"))
    assert any(key.endswith("/sweep.yaml") for key in keys)
    assert any("experiment_state" in key for key in keys)
    for run in runs:
        trial_id = run.data.tags["tuner.trial_id"]
        assert any(f"trial_{trial_id}/checkpoint_" in key for key in keys), trial_id
        assert run.data.tags["tuner.checkpoint"].startswith(f"s3://{BUCKET}/")

    # MLflow's artifacts (here the sweep file) landed in the bucket through the server.
    mlflow_keys = s3_keys(ray_cluster, f"{MLFLOW_ARTIFACTS}/")
    assert any(
        parent.info.run_id in key and key.endswith("spec/sweep.yaml") for key in mlflow_keys
    ), mlflow_keys

    logs = tuner(ray_cluster, project, "logs", "cluster-submit")
    assert logs.returncode == 0, logs.stderr
    assert "best trial" in logs.stdout


@pytest.mark.heavy
def test_a_pbt_sweep_copies_checkpoints_across_nodes_through_s3_and_outlives_a_lost_node(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    write_project(project, "cluster-pbt", scheduler={
        "kind": "pbt", "perturbation_interval": 2, "quantile_fraction": 0.5,
    }, config={
        "epochs": 8, "epoch_seconds": 0.2, "log_dir": str(project / "logs"),
        # Trials wait after epoch 3 (no perturbation point) until the node is gone:
        # PBT pauses trials at every exploit, so both workers must be seen busy.
        "hold_after": 3, "release": str(project / "release"),
    })  # fmt: skip
    submit(ray_cluster, project)

    # A worker is preempted while the population trains, as with ASHA.
    def held_on() -> list[str]:  # the nodes of the trials waiting after epoch 3
        return [ran[-1][1] for ran in epochs_run(project).values() if ran[-1][0] == 3]

    node_id = wait_for(lambda: len(held_on()) == 2 and held_on()[0], "both workers to hold one")
    victim = next(worker for worker in ray_cluster.workers if worker.node_id == node_id)
    ray_cluster.workers.remove(victim)
    drain_with_ray(ray_cluster.cluster.address, victim.node_id)(
        Notice(action="terminate", time=datetime.now(timezone.utc) + timedelta(minutes=2))
    )
    ray_cluster.cluster.remove_node(victim, allow_graceful=False)
    ray_cluster.workers.append(add_worker(ray_cluster.cluster))
    (project / "release").touch()

    final = wait_until_job_ends(ray_cluster, project, "cluster-pbt")
    assert_succeeded(ray_cluster, project, final)
    runs = trial_runs(ray_cluster.tracking_uri, "cluster-pbt")
    # A trial handed an idle worker of the lost node restarts too (it used to fail).
    errors = [run.data.tags["tuner.error"] for run in runs if "tuner.error" in run.data.tags]
    assert final["by_state"] == {"finished": 4}, errors
    exploited = [run for run in runs if "tuner.exploit" in run.data.tags]
    assert exploited, "the weaker half copied a stronger trial's checkpoint from S3"
    restarted = [run for run in runs if "tuner.restarts" in run.data.tags]
    assert restarted and {r.data.tags["tuner.restart_reason"] for r in restarted} == {"preempted"}
    client = MlflowClient(ray_cluster.tracking_uri)
    for run in runs:
        steps = logged_steps(ray_cluster.tracking_uri, run.info.run_id)
        assert steps == sorted(set(steps)) and steps[-1] == 8, "each epoch once, to the end"
        # The value each epoch trained with, inside the searched range.
        xs = [point.value for point in client.get_metric_history(run.info.run_id, "hp.x")]
        assert xs and all(0.0 <= x <= 1.0 for x in xs)
    (parent,) = sweep_runs(ray_cluster.tracking_uri, "cluster-pbt")
    assert yaml.safe_load(parent.data.tags["tuner.pbt_schedule"])["schedule"]


@pytest.mark.heavy
def test_a_preempted_worker_costs_at_most_an_epoch(ray_cluster: RayCluster, tmp_path: Path) -> None:
    project = tmp_path / "project"
    # 1 s epochs: the trial on the lost node still has about 6 s to go when it is lost,
    # however slowly a loaded machine drains and removes the node.
    write_project(project, "cluster-preempt", config={
        "epochs": 8, "epoch_seconds": 1.0, "log_dir": str(project / "logs"),
    })  # fmt: skip
    submit(ray_cluster, project)
    # Both workers busy, each trial a few epochs in.
    wait_for(
        lambda: sum(len(epochs) >= 2 for epochs in epochs_run(project).values()) >= 2,
        "two trials to run two epochs",
    )
    victim = ray_cluster.workers.pop(0)
    # What the preemption watcher does on a spot notice, then the instance goes away;
    # the autoscaling group brings a new one.
    drain_with_ray(ray_cluster.cluster.address, victim.node_id)(
        Notice(action="terminate", time=datetime.now(timezone.utc) + timedelta(minutes=2))
    )
    ray_cluster.cluster.remove_node(victim, allow_graceful=False)
    ray_cluster.workers.append(add_worker(ray_cluster.cluster))

    final = wait_until_job_ends(ray_cluster, project, "cluster-preempt")
    assert_succeeded(ray_cluster, project, final)
    assert final["by_state"] == {"finished": 4}

    runs = trial_runs(ray_cluster.tracking_uri, "cluster-preempt")
    restarted = [run for run in runs if "tuner.restarts" in run.data.tags]
    assert restarted, "the trial on the lost node restarted"
    for run in restarted:
        assert run.data.tags["tuner.restart_reason"] == "preempted"
    for run in runs:
        # Every epoch logged once, although the restarted trials ran some twice.
        assert logged_steps(ray_cluster.tracking_uri, run.info.run_id) == list(range(1, 9))
    ran = epochs_run(project)
    for run in restarted:
        epochs = ran[run.data.tags["tuner.trial_id"]]
        moved = next(i for i in range(1, len(epochs)) if epochs[i][1] != epochs[i - 1][1])
        assert epochs[moved - 1][1] == victim.node_id
        # It went on from its last checkpoint on another node: at most the epoch in
        # flight ran again, and nothing before it.
        assert epochs[moved][0] in (epochs[moved - 1][0], epochs[moved - 1][0] + 1)
        assert [epoch for epoch, _ in epochs[moved:]] == list(range(epochs[moved][0], 9))
    (parent,) = sweep_runs(ray_cluster.tracking_uri, "cluster-preempt")
    assert parent.data.tags["tuner.restarted_trials"] == str(len(restarted))
    # The training redone: the epoch in flight (1 s), and the one it ran again at most.
    lost = {run.info.run_id: float(run.data.tags["tuner.lost_work_s"]) for run in runs}
    for run in runs:
        assert (0 < lost[run.info.run_id] < 4) == (run in restarted), lost
    assert float(parent.data.tags["tuner.lost_work_s"]) == pytest.approx(
        sum(lost.values()), abs=0.1
    )
    assert final["lost_work_s"] == pytest.approx(sum(lost.values()), abs=0.1)
    logs = tuner(ray_cluster, project, "logs", "cluster-preempt")
    assert "preempted" in logs.stdout


@pytest.mark.heavy
def test_resume_finishes_a_sweep_whose_driver_died(ray_cluster: RayCluster, tmp_path: Path) -> None:
    project = tmp_path / "project"
    write_project(project, "cluster-resume", num_samples=5, config={
        "epochs": 6, "epoch_seconds": 0.8, "log_dir": str(project / "logs"),
    })  # fmt: skip
    submit(ray_cluster, project)
    job = sweep_status(ray_cluster, project, "cluster-resume")[-1]["job"]
    jobs = JobSubmissionClient(ray_cluster.jobs_url, headers={
        "Authorization": f"Bearer {ray_cluster.token}"
    })  # fmt: skip
    # The driver's pid is found before the trials get going, so that the kill below lands
    # mid-sweep however slowly a loaded machine runs `tuner status`.
    driver = wait_for(lambda: jobs.get_job_info(job).driver_info, "the job's driver to start")
    wait_for(
        lambda: (
            sum(len(epochs) >= 6 for epochs in epochs_run(project).values()) >= 1
            and sum(len(epochs) >= 2 for epochs in epochs_run(project).values()) >= 3
        ),
        "one trial finished and two more under way",
    )
    os.kill(int(driver.pid), signal.SIGKILL)  # the driver is lost, without a word
    died = wait_until_job_ends(ray_cluster, project, "cluster-resume")
    assert died["status"] == "FAILED"
    # The dead driver left its trials' runs RUNNING in MLflow; status calls them interrupted.
    assert "running" not in died["by_state"], died
    assert died["by_state"].get("interrupted", 0) >= 1, died
    told = tuner(ray_cluster, project, "status", "cluster-resume")
    assert "interrupted" in told.stdout
    assert "`tuner resume cluster-resume` finishes it" in told.stdout

    resumed = tuner(ray_cluster, project, "resume", "cluster-resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming sweep cluster-resume" in resumed.stdout
    final = wait_until_job_ends(ray_cluster, project, "cluster-resume")
    assert_succeeded(ray_cluster, project, final)
    assert final["job"] != job

    (parent,) = sweep_runs(ray_cluster.tracking_uri, "cluster-resume")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["tuner.resumes"] == "1"
    runs = trial_runs(ray_cluster.tracking_uri, "cluster-resume")
    assert len(runs) == 5, "exactly num_samples trials: none started twice"
    for run in runs:
        assert run.info.status == "FINISHED"
        assert logged_steps(ray_cluster.tracking_uri, run.info.run_id) == list(range(1, 7))


def test_stop_then_resume(ray_cluster: RayCluster, tmp_path: Path) -> None:
    project = tmp_path / "project"
    # The first trials hold after their second epoch until the test lets them go: however
    # slowly `tuner stop` starts on a loaded machine, the sweep is still running when it
    # lands (with 0.4 s epochs a slow CI run found the job already ended).
    release = project / "release"
    write_project(project, "cluster-stop", config={
        "epochs": 6, "epoch_seconds": 0.4, "log_dir": str(project / "logs"),
        "hold_after": 2, "release": str(release),
    })  # fmt: skip
    submit(ray_cluster, project)
    wait_for(
        lambda: sum(len(epochs) >= 2 for epochs in epochs_run(project).values()) >= 2,
        "two trials under way",
    )
    stopped = tuner(ray_cluster, project, "stop", "cluster-stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "STOPPED" in stopped.stdout
    (parent,) = sweep_runs(ray_cluster.tracking_uri, "cluster-stop")
    assert parent.info.status == "KILLED"
    cut_off = [run for run in trial_runs(ray_cluster.tracking_uri, "cluster-stop")
               if run.info.status == "KILLED"]  # fmt: skip
    assert cut_off and all(run.data.tags["tuner.killed"] == "interrupted" for run in cut_off)

    release.touch()
    resumed = tuner(ray_cluster, project, "resume", "cluster-stop")
    assert resumed.returncode == 0, resumed.stderr
    final = wait_until_job_ends(ray_cluster, project, "cluster-stop")
    assert_succeeded(ray_cluster, project, final)
    runs = trial_runs(ray_cluster.tracking_uri, "cluster-stop")
    assert len(runs) == 4
    for run in runs:
        assert run.info.status == "FINISHED"
        assert "tuner.killed" not in run.data.tags
        assert logged_steps(ray_cluster.tracking_uri, run.info.run_id) == list(range(1, 7))


def test_wrong_token_and_bad_input_are_one_line_errors(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    write_project(project, "cluster-errors")
    wrong = run_cli("status", cwd=project, env=ray_cluster.env(RAY_AUTH_TOKEN="0" * 32))
    assert wrong.returncode == 1
    assert wrong.stderr.strip().splitlines() == [
        f"error: the Ray cluster at {ray_cluster.jobs_url} rejected the auth token "
        "(is it the cluster's?)"
    ]

    unreachable = run_cli(
        "status", cwd=project, env=ray_cluster.env(RAY_ADDRESS=f"http://127.0.0.1:{free_port()}")
    )
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("error: cannot reach the Ray Jobs API at")
    assert len(unreachable.stderr.strip().splitlines()) == 1

    no_storage = tuner(ray_cluster, project, "submit", "sweep.yaml",
                       "--tracking-uri", ray_cluster.tracking_uri)  # fmt: skip
    assert no_storage.returncode == 2
    assert "--storage: a cluster sweep needs shared storage" in no_storage.stderr

    unknown = tuner(ray_cluster, project, "logs", "no-such-sweep")
    assert unknown.returncode == 1
    assert "no sweep or job named 'no-such-sweep'" in unknown.stderr

    # Before: a sweep this cluster never ran was refused for a missing --storage.
    never_submitted = tuner(ray_cluster, project, "resume", "never-submitted")
    assert never_submitted.returncode == 1
    assert never_submitted.stderr.strip().splitlines() == [
        f"error: sweep 'never-submitted': the cluster at {ray_cluster.jobs_url} has no job of "
        "that name to resume from; to resume it from its storage, give --storage s3://... and "
        "--tracking-uri http://... as it was submitted with"
    ]


@pytest.mark.heavy
def test_a_spot_notice_costs_seconds_not_the_epoch_in_flight(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    victim = ray_cluster.workers[0]
    metadata = FakeMetadata()
    watcher = subprocess.Popen(
        [*TUNER, "preemption-watch", "--address", ray_cluster.cluster.address,
         "--node-id", victim.node_id, "--metadata-url", metadata.url, "--poll-seconds", "0.2"],
        env=cli_env(ray_cluster.env()),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert watcher.stdout is not None
        # The mailbox is open before the trials start: they hear of a notice at once.
        assert "will hear of a spot notice" in watcher.stdout.readline()
        project = tmp_path / "project"
        # Epochs of several seconds (about 5,000 optimizer steps), and no checkpoint
        # before the last epoch's unless a notice asks for one.
        knobs = {
            "dataset": "synthetic", "synthetic_samples": 100_000, "epochs": 3,
            "batch_size": 16, "hidden": 32, "dropout": 0.1, "seed": 3,
        }  # fmt: skip
        write_project(
            project, "cluster-notice", trainable="builtin:classifier", metric="val_accuracy",
            num_samples=2, params={"lr": {"type": "float", "low": 1e-3, "high": 3e-3}},
            checkpoint={"every_epochs": 1, "min_interval_s": 3600}, config=knobs,
        )  # fmt: skip
        submit(ray_cluster, project)
        client = MlflowClient(ray_cluster.tracking_uri)

        def both_past_epoch_1() -> bool:
            if client.get_experiment_by_name("cluster-notice") is None:
                return False  # the driver has not started yet
            runs = trial_runs(ray_cluster.tracking_uri, "cluster-notice")
            return len(runs) == 2 and all(
                client.get_metric_history(run.info.run_id, "val_accuracy") for run in runs
            )

        wait_for(both_past_epoch_1, "both trials to finish their first epoch")
        metadata.post_notice()
        told, _ = watcher.communicate(timeout=120)
    finally:
        watcher.kill()
        metadata.server.shutdown()
    assert watcher.returncode == 0, told
    took = float(told.split("the node's trials have checkpointed (")[1].split(" s)")[0])
    assert took < 5, told
    assert f"drained node {victim.node_id} with reason PREEMPTION" in told
    ray_cluster.workers.remove(victim)
    ray_cluster.cluster.remove_node(victim, allow_graceful=False)  # EC2 takes it
    ray_cluster.workers.append(add_worker(ray_cluster.cluster))

    final = wait_until_job_ends(ray_cluster, project, "cluster-notice")
    assert_succeeded(ray_cluster, project, final)
    runs = trial_runs(ray_cluster.tracking_uri, "cluster-notice")
    (restarted,) = [run for run in runs if "tuner.restarts" in run.data.tags]
    assert restarted.data.tags["tuner.restart_reason"] == "preempted"
    for run in runs:
        assert logged_steps(ray_cluster.tracking_uri, run.info.run_id, "val_accuracy") == [1, 2, 3]
    # It went on from inside the epoch in flight, and lost under 2 s of training.
    (resumed,) = client.get_metric_history(restarted.info.run_id, "resumed_within_epoch_s")
    assert resumed.step in (2, 3) and resumed.value > 0
    assert float(restarted.data.tags["tuner.lost_work_s"]) < 2
    # Its weights are those of a run that was never interrupted, bit for bit.
    lr = float(restarted.data.params["lr"])
    (straight,) = [e for e in run_epochs({**knobs, "lr": lr}, "classification", None) if e.last]
    location = restarted.data.tags["tuner.checkpoint"].removeprefix(f"s3://{BUCKET}/")
    body = boto3.client("s3", endpoint_url=ray_cluster.s3_endpoint).get_object(
        Bucket=BUCKET, Key=f"{location}/state.pt"
    )["Body"]
    weights = torch.load(io.BytesIO(body.read()), weights_only=True)["model"]
    for name, tensor in straight.state().model.items():
        assert torch.equal(weights[name], tensor), name


SPREAD_EPOCHS = 4


def placements(project: Path) -> dict[float, list[dict[str, Any]]]:
    """Each trial's epochs, keyed by its searched x, as its rank 0 logged them: the epoch,
    the checkpoint's epoch it went on from, and each worker's Ray node id by rank."""
    log = project / "logs" / "placements.jsonl"
    if not log.exists():
        return {}
    text = log.read_text()
    lines = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]  # mid-write
    by_trial: dict[float, list[dict[str, Any]]] = {}
    for line in lines:
        entry = json.loads(line)
        by_trial.setdefault(entry["x"], []).append(entry)
    return by_trial


def run_of(tracking_uri: str, sweep: str, x: float) -> Any | None:
    """The trial run that searched this x (MLflow logs a float param as its repr)."""
    if MlflowClient(tracking_uri).get_experiment_by_name(sweep) is None:
        return None  # the driver has not started yet
    found = [
        run
        for run in trial_runs(tracking_uri, sweep)
        if "x" in run.data.params and float(run.data.params["x"]) == x
    ]
    return found[0] if found else None


def held_after_checkpoint(cluster: RayCluster, project: Path, sweep: str) -> dict[str, Any] | None:
    """The epoch-2 placement of the trial whose workers hold after epoch 2, once MLflow
    shows that epoch: Tune has then taken its checkpoint, so a restart goes on from it."""
    for epochs in placements(project).values():
        if epochs[-1]["epoch"] == 2:
            run = run_of(cluster.tracking_uri, sweep, epochs[-1]["x"])
            if run is not None and logged_steps(cluster.tracking_uri, run.info.run_id) == [1, 2]:
                return epochs[-1]
    return None


def worker_groups(cluster: RayCluster) -> list[list[str]]:
    """The nodes of each live placement group of two 1-CPU bundles (a 2-worker trial's
    Train workers), bundle by bundle: Ray's own record of where it put the workers."""
    groups = list_placement_groups(
        address=cluster.jobs_url, filters=[("state", "=", "CREATED")], detail=True
    )
    return [
        [bundle["node_id"] for bundle in group.bundles]
        for group in groups
        if group.bundles
        and len(group.bundles) == 2
        and all(bundle.get("unit_resources") == {"CPU": 1.0} for bundle in group.bundles)
    ]


def lose_worker_node(cluster: RayCluster, node_id: str) -> None:
    """A worker node dies without a word (no drain: a crashed instance), and the
    autoscaling group brings a new one; the module's later tests keep two workers."""
    victim = next(worker for worker in cluster.workers if worker.node_id == node_id)
    cluster.workers.remove(victim)
    cluster.cluster.remove_node(victim, allow_graceful=False)
    cluster.workers.append(add_worker(cluster.cluster))


@pytest.mark.heavy
def test_two_worker_trials_spread_one_worker_per_node_and_go_on_from_a_checkpoint_when_one_dies(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    release = project / "release"
    # The workers hold after epoch 2 until the node is gone: the kill lands mid-trial
    # however slowly a loaded machine starts Ray Train's workers.
    write_project(
        project, "cluster-spread", trainable="spread_workers:fit", num_samples=3,
        searcher={"kind": "optuna", "sampler": "tpe", "seed": 0},
        scheduler={"kind": "asha", "max_t": SPREAD_EPOCHS, "grace_period": 1,
                   "reduction_factor": 2},
        resources_per_trial={"workers": 2, "cpu": 1, "placement": "spread"},
        config={"epochs": SPREAD_EPOCHS, "epoch_seconds": 0.5,
                "log_dir": str(project / "logs"), "hold_after": 2, "release": str(release)},
    )  # fmt: skip
    # The user's per-worker function lives in their project folder, shipped with the job.
    shutil.copy(Path(__file__).with_name("spread_workers.py"), project / "spread_workers.py")
    worker_nodes = {worker.node_id for worker in ray_cluster.workers}
    submit(ray_cluster, project)
    try:
        held = wait_for(
            lambda: held_after_checkpoint(ray_cluster, project, "cluster-spread"),
            "a trial to checkpoint epoch 2 and hold",
        )
        # Ray placed the trial's one set of workers one per node, as they found.
        (group,) = worker_groups(ray_cluster)
        assert sorted(group) == sorted(held["nodes"])
        victim = held["nodes"][1]  # rank 1's node: each node holds one of the workers
        lose_worker_node(ray_cluster, victim)
        worker_nodes.add(ray_cluster.workers[-1].node_id)
    finally:
        release.touch()  # a failed wait must not leave the job holding the cluster

    final = wait_until_job_ends(ray_cluster, project, "cluster-spread")
    assert_succeeded(ray_cluster, project, final)
    runs = trial_runs(ray_cluster.tracking_uri, "cluster-spread")
    assert len(runs) == 3
    assert final["workers"] == {"2 workers x 1 CPU (spread)": 3}

    # Ray put each trial's two workers on two different worker nodes, every epoch, and
    # the trial itself says so in MLflow.
    ran = placements(project)
    assert len(ran) == 3
    for epochs in ran.values():
        for epoch in epochs:
            assert len(set(epoch["nodes"])) == 2, epoch
            assert set(epoch["nodes"]) <= worker_nodes, epoch

    # The trial that lost a node restarted (not FAILED) on the survivor and the new node,
    # from its epoch-2 checkpoint: it ran no epoch twice.
    (restarted,) = [run for run in runs if "tuner.restarts" in run.data.tags]
    assert float(restarted.data.params["x"]) == held["x"]
    assert restarted.info.status == "FINISHED"
    assert restarted.data.tags["tuner.restarts"] == "1"
    epochs = ran[held["x"]]
    assert [(e["epoch"], e["resumed_from"]) for e in epochs] == [(1, 0), (2, 0), (3, 2), (4, 2)]
    assert victim in epochs[1]["nodes"] and victim not in epochs[2]["nodes"]
    client = MlflowClient(ray_cluster.tracking_uri)
    resumed = client.get_metric_history(restarted.info.run_id, "resumed_from_epoch")
    assert [(point.step, point.value) for point in sorted(resumed, key=lambda p: p.step)] == [
        (1, 0), (2, 0), (3, 2), (4, 2)
    ]  # fmt: skip

    # TPE chose the trials, ASHA stopped or finished each; MLflow has every epoch once.
    # Seed 0's first draws (x = 0.549, 0.715, 0.603, one trial at a time) make ASHA stop
    # the third at epoch 1, behind the second.
    assert final["by_state"] == {"finished": 2, "stopped_early": 1}, final["by_state"]
    (parent,) = sweep_runs(ray_cluster.tracking_uri, "cluster-spread")
    assert parent.data.tags["tuner.searcher"] == "optuna:tpe"
    assert parent.data.tags["tuner.scheduler"] == "asha"
    assert parent.data.tags["tuner.restarted_trials"] == "1"
    for run in runs:
        steps = logged_steps(ray_cluster.tracking_uri, run.info.run_id)
        if run.info.status == "KILLED":
            assert run.data.tags["tuner.stopped_early"] == "asha"
            assert steps == list(range(1, int(run.data.tags["tuner.stopped_at_epoch"]) + 1))
            assert len(steps) < SPREAD_EPOCHS
        else:
            assert run.info.status == "FINISHED"
            assert steps == list(range(1, SPREAD_EPOCHS + 1))
        for metric in ("nodes", "resumed_from_epoch"):
            assert logged_steps(ray_cluster.tracking_uri, run.info.run_id, metric) == steps
        nodes = client.get_metric_history(run.info.run_id, "nodes")
        assert {point.value for point in nodes} == {2}
    # Last, so that every check above has run: the user is told the node was lost.
    reason = restarted.data.tags["tuner.restart_reason"]
    assert reason == "node lost", f"a lost node reads as the trial's own {reason!r}"
