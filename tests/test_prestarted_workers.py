"""An embedded Ray starts with only what a sweep uses, and a sweep's first trials run in
the workers Ray starts with `ray.init`, rather than waiting for new processes while those
sit idle."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import cast

import psutil
import pytest
import ray
from mlflow import MlflowClient
from ray._private import node, ray_constants, services
from rich.console import Console

from tuner.engine.prestarted_workers import TUNE_ACTOR_ENV, runtime_env_vars
from tuner.engine.runner import RunOptions, run_sweep
from tuner.engine.session import start_or_join
from tuner.spec import parse_spec


def global_node() -> node.Node:
    """The node of this process's Ray. ray._private.worker sets _global_node to None,
    unannotated, so mypy reads it as always None; ray.init sets it."""
    started = cast("node.Node | None", ray._private.worker._global_node)
    assert started is not None, "Ray is up"
    return started


def test_a_trial_actor_is_given_only_what_its_workers_lack() -> None:
    inherited = {"PL_DISABLE_FORK": "1", "PYTHONPATH": "/a"}
    assert runtime_env_vars({"PL_DISABLE_FORK": "1"}, inherited) == {}
    wanted = {"PL_DISABLE_FORK": "1", "RAY_CHDIR_TO_TRIAL_DIR": "0"}
    assert runtime_env_vars(wanted, inherited) == {"RAY_CHDIR_TO_TRIAL_DIR": "0"}
    assert runtime_env_vars({"PL_DISABLE_FORK": "0"}, inherited) == {"PL_DISABLE_FORK": "0"}


@pytest.mark.ray
def test_the_first_trials_run_in_the_workers_ray_started_with(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "name": "prestarted",
            "trainable": "tests.trainables:reports_pid",
            "metric": "score",
            "mode": "max",
            "searcher": {"kind": "grid"},
            "max_concurrent_trials": 2,
            "params": {"x": {"type": "grid", "values": [0.1, 0.2]}},
        },
        "prestarted.yaml",
    )
    logs: list[Path] = []
    # What the workers inherit instead of a runtime env; the driver's own stay as they were.
    inherited = ["PYTHONPATH", *TUNE_ACTOR_ENV]
    environment = {name: os.environ.get(name) for name in inherited}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_sweep(
        spec,
        RunOptions(
            tracking_uri=uri,
            storage=str(tmp_path / "runs"),
            num_cpus=2,
            console=Console(file=io.StringIO()),
            # While Ray is up: where its session keeps each worker's log.
            on_finish=lambda _: logs.append(Path(global_node().get_logs_dir_path())),
        ),
    )
    assert result.num_trials == 2
    assert {name: os.environ.get(name) for name in inherited} == environment
    client = MlflowClient(uri)
    runs = client.search_runs([result.experiment_id], "tags.`tuner.role` = 'trial'")
    pids = {int(run.data.metrics["worker_pid"]) for run in runs}
    assert pids, "each trial reported its process"
    # Ray names a worker's log after the job it was started for: ffffffff is none, a
    # worker it started at ray.init, before the sweep's job; the job's own are 01000000.
    prestarted = {
        int(log.stem.rsplit("-", 1)[1]) for log in logs[0].glob("worker-*-ffffffff-*.out")
    }
    assert pids <= prestarted, f"trials ran in {pids}; Ray prestarted {prestarted}"


@pytest.mark.ray
def test_an_embedded_ray_starts_without_a_dashboard_head_or_autoscaler_and_runs_work() -> None:
    rays_own = (node.Node.start_api_server, node.Node.start_monitor, services.get_node)
    assert start_or_join(None, 1)
    try:
        processes = global_node().all_processes
        assert ray_constants.PROCESS_TYPE_RAYLET in processes
        assert ray_constants.PROCESS_TYPE_DASHBOARD not in processes
        assert ray_constants.PROCESS_TYPE_MONITOR not in processes
        commands = [
            " ".join(child.cmdline())
            for child in psutil.Process().children(recursive=True)
            if child.is_running()
        ]
        assert not [c for c in commands if "dashboard/dashboard.py" in c], commands
        assert not [c for c in commands if "autoscaler/_private/monitor.py" in c], commands
        assert ray.get(ray.remote(lambda: 6 * 7).remote()) == 42
    finally:
        ray.shutdown()
    assert (node.Node.start_api_server, node.Node.start_monitor, services.get_node) == rays_own
