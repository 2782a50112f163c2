"""`tuner status`'s row per job: the problem that kept its trial counts away reaches
`--json` as it reaches the text, in seconds, with no password in it.

Before, `--json` left the problem out (a script saw a job without counts and no
reason), and a tracking server that was down took MLflow's minutes of retries per job.
"""

from __future__ import annotations

import time

from bench.servers import free_port
from tuner.cli.job_rows import job_counts, json_row
from tuner.cluster.jobs import SweepJob


def a_job(tracking_uri: str | None) -> SweepJob:
    return SweepJob(
        submission_id="digits-20261207-053000", sweep="digits", action="run",
        status="RUNNING", start_time_s=0.0, end_time_s=None, storage="s3://b/p",
        tracking_uri=tracking_uri, message="",
    )  # fmt: skip


def test_a_job_without_a_problem_says_null() -> None:
    assert json_row(a_job(None), None, "")["problem"] is None


def test_a_tracking_server_that_is_down_is_said_in_seconds() -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    counts, problem = job_counts(a_job(uri), None)
    assert time.monotonic() - started < 10  # MLflow's retries took minutes
    assert counts is None
    assert problem.startswith(f"MLflow tracking server {uri} unreachable:")


def test_a_password_in_the_jobs_tracking_uri_is_not_shown() -> None:
    port = free_port()
    counts, problem = job_counts(a_job(f"http://bob:s3cret@127.0.0.1:{port}"), None)
    assert counts is None
    assert "s3cret" not in problem
    assert f"bob:***@127.0.0.1:{port}" in problem
