"""`tuner status --json` and `tuner logs` against a real Ray head and its Jobs API.

One head with token auth on 127.0.0.1, no workers: the jobs here are shell commands
submitted with tuner's metadata, as `tuner submit` would, so that what is tested is what
the commands make of a job (its MLflow problem, its output), not a sweep.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ray._private import ray_constants
from ray.cluster_utils import Cluster
from ray.job_submission import JobSubmissionClient

from bench.servers import free_port
from tests.conftest import run_cli
from tests.test_cluster import jobs_api_accepts_jobs, refresh_ray_auth, wait_for

pytestmark = pytest.mark.e2e


@dataclass
class Head:
    url: str
    token: str

    def env(self) -> dict[str, str]:
        return {"RAY_ADDRESS": self.url, "RAY_AUTH_TOKEN": self.token}


@pytest.fixture(scope="module")
def head() -> Iterator[Head]:
    token = secrets.token_hex(16)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", "token")
        patch.setenv("RAY_AUTH_TOKEN", token)
        patch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        patch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
        refresh_ray_auth()
        dashboard = free_port()
        # Every port the head's agents listen on is a free one: Ray's fixed defaults
        # (52365 ...) clash with another Ray on the machine.
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 1,
                "node_ip_address": "127.0.0.1",
                "include_dashboard": True,
                "dashboard_host": "127.0.0.1",
                "dashboard_port": dashboard,
                "dashboard_agent_listen_port": free_port(),
                "runtime_env_agent_port": free_port(),
                "metrics_export_port": free_port(),
            },
        )
        try:
            jobs_api_accepts_jobs(f"http://127.0.0.1:{dashboard}")
            yield Head(f"http://127.0.0.1:{dashboard}", token)
        finally:
            cluster.shutdown()
    refresh_ray_auth()


def submit_job(head: Head, job_id: str, entrypoint: str, tracking_uri: str) -> None:
    client = JobSubmissionClient(head.url)
    client.submit_job(
        entrypoint=entrypoint,
        submission_id=job_id,
        metadata={"tuner.sweep": job_id.rsplit("-", 1)[0], "tuner.tracking_uri": tracking_uri},
    )
    wait_for(lambda: client.get_job_status(job_id).is_terminal(), f"job {job_id}", 120)


def test_status_json_says_why_a_job_has_no_counts(head: Head, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    submit_job(head, "mlflow-down-1", "true", down)
    done = run_cli("status", "mlflow-down", "--json", cwd=tmp_path, env=head.env(), timeout=60)
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)
    assert row["status"] == "SUCCEEDED"
    assert row["problem"].startswith(f"MLflow tracking server {down} unreachable:")
    text = run_cli("status", "mlflow-down", cwd=tmp_path, env=head.env(), timeout=60)
    assert row["problem"] in text.stdout


def test_logs_keep_colours_and_drop_terminal_control(head: Head, tmp_path: Path) -> None:
    printed = r"printf 'A \033[31mred\033[0m \033]0;title\007\033[2JB\n'"
    submit_job(head, "escapes-1", printed, f"http://127.0.0.1:{free_port()}")
    done = run_cli("logs", "escapes", cwd=tmp_path, env=head.env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "A \x1b[31mred\x1b[0m B\n" in done.stdout
    assert "\x07" not in done.stdout and "\x1b]" not in done.stdout
    assert "\x1b[2J" not in done.stdout


def test_logs_follow_of_an_ended_job_prints_its_log_and_nothing_else(
    head: Head, tmp_path: Path
) -> None:
    """Before: Ray's "INFO ... WebSocket closed for job ..." line followed on stderr."""
    submit_job(head, "followed-1", "echo the-end", f"http://127.0.0.1:{free_port()}")
    done = run_cli("logs", "followed", "--follow", cwd=tmp_path, env=head.env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "the-end\n" in done.stdout
    assert done.stderr == ""
