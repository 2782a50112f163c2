"""Sweeps on a Ray cluster through the Ray Jobs API: submit, status, logs, stop, resume.

The driver (`tuner run` / `tuner resume` with `--address auto`) runs as a Ray job on the
head node: a job that asks for no entrypoint resources is placed there, never on a spot
worker that may vanish. The working directory travels with the job, so user trainables,
data files and the sweep file are the ones the user has. A job's submission id is the
sweep's name plus its start time, and its metadata names the sweep, so every command
here takes a sweep name.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ray.exceptions import AuthenticationError
from ray.job_submission import JobDetails, JobStatus, JobSubmissionClient

from tuner.defaults import SUBMISSION_ID_ENV
from tuner.engine.session import use_token_auth_if_available
from tuner.spec import SweepSpec
from tuner.spec.secrets import has_login

META_SWEEP = "tuner.sweep"
META_ACTION = "tuner.action"  # "run" or "resume"
META_STORAGE = "tuner.storage"
META_TRACKING = "tuner.tracking_uri"

# What stays behind when the working directory is packaged: environments, local runs
# and tracking stores are large and belong to this machine.
UPLOAD_EXCLUDES = [".git", ".venv", "venv", "__pycache__", "tuner_runs", "mlruns", "mlflow.db"]
# Non-secret settings a job needs to reach the same S3 store; credentials never travel
# (the nodes' instance role provides them).
FORWARDED_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION")
# `tuner stop` is a Ctrl-C for the driver: Ray Tune stops the trials, saves the
# experiment state, and the MLflow runs end KILLED. Ray's default (SIGTERM, then SIGKILL
# after 3 s) would leave no time for that.
STOP_ENV = {"RAY_JOB_STOP_SIGNAL": "SIGINT", "RAY_JOB_STOP_WAIT_TIME_S": "120"}

ENDED = frozenset(s.value for s in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED))


class ClusterError(RuntimeError):
    """The cluster cannot be reached, refuses the token, or has no such sweep (exit 1)."""


@dataclass(frozen=True)
class SweepJob:
    submission_id: str
    sweep: str
    action: str
    status: str
    start_time_s: float
    end_time_s: float | None
    storage: str | None
    tracking_uri: str | None
    message: str

    @property
    def finished(self) -> bool:
        return self.status in ENDED

    @classmethod
    def of(cls, job: JobDetails) -> SweepJob | None:
        metadata = job.metadata or {}
        if META_SWEEP not in metadata or job.submission_id is None:
            return None  # not a tuner job
        return cls(
            submission_id=job.submission_id,
            sweep=metadata[META_SWEEP],
            action=metadata.get(META_ACTION, "run"),
            status=str(job.status.value if hasattr(job.status, "value") else job.status),
            start_time_s=(job.start_time or 0) / 1000,
            end_time_s=job.end_time / 1000 if job.end_time else None,
            storage=metadata.get(META_STORAGE),
            tracking_uri=metadata.get(META_TRACKING),
            message=_first_line(job.message or ""),
        )


@dataclass
class Cluster:
    """A Ray cluster's Jobs API (http://HEAD:8265), token auth kept on."""

    address: str
    _client: JobSubmissionClient | None = field(default=None, repr=False)

    @property
    def client(self) -> JobSubmissionClient:
        if self._client is None:
            self._client = connect(self.address)
        return self._client

    def submit(
        self,
        spec: SweepSpec,
        command: list[str],
        *,
        working_dir: Path,
        storage: str,
        tracking_uri: str,
        action: str,
    ) -> str:
        """Start `tuner COMMAND...` as a job on the head; return its submission id."""
        submission_id = f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        env = {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}
        env.update(STOP_ENV)
        env[SUBMISSION_ID_ENV] = submission_id
        return str(
            self._call(
                lambda: self.client.submit_job(
                    entrypoint=shlex.join(["tuner", *command]),
                    submission_id=submission_id,
                    runtime_env={
                        "working_dir": str(working_dir),
                        "excludes": UPLOAD_EXCLUDES,
                        "env_vars": env,
                    },
                    metadata={
                        META_SWEEP: spec.name,
                        META_ACTION: action,
                        META_STORAGE: storage,
                        META_TRACKING: tracking_uri,
                    },
                )
            )
        )

    def jobs(self, sweep: str | None = None) -> list[SweepJob]:
        """tuner's jobs, oldest first; `sweep` is a sweep name or a submission id."""
        jobs = [job for job in map(SweepJob.of, self._call(self.client.list_jobs)) if job]
        if sweep is not None:
            jobs = [job for job in jobs if sweep in (job.sweep, job.submission_id)]
        return sorted(jobs, key=lambda job: job.start_time_s)

    def latest(self, sweep: str) -> SweepJob:
        jobs = self.jobs(sweep)
        if not jobs:
            raise ClusterError(
                f"no sweep or job named {shown(sweep)} on the cluster at {self.address}"
            )
        return jobs[-1]

    def logs(self, job: SweepJob) -> str:
        return str(self._call(lambda: self.client.get_job_logs(job.submission_id)))

    def follow_logs(self, job: SweepJob, write: Callable[[str], Any]) -> None:
        """Stream the job's log until the job ends."""
        # Ray's client logs "WebSocket closed for job ... with close code 1000" at INFO on
        # stderr when the stream ends as it should: a line under the user's log.
        logging.getLogger("ray.dashboard.modules.job.sdk").setLevel(logging.WARNING)

        async def tail() -> None:
            async for lines in self.client.tail_job_logs(job.submission_id):
                write(lines)

        self._call(lambda: asyncio.run(tail()))

    def stop(self, job: SweepJob) -> bool:
        return bool(self._call(lambda: self.client.stop_job(job.submission_id)))

    def status_of(self, job: SweepJob) -> str:
        return str(self._call(lambda: self.client.get_job_status(job.submission_id)).value)

    def wait_until_ended(self, job: SweepJob, poll_s: float = 1.0) -> str:
        """Poll the job until it has ended; its final status."""
        state = job.status
        while state not in ENDED:
            time.sleep(poll_s)
            state = self.status_of(job)
        return state

    def _call(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except AuthenticationError:
            raise ClusterError(_token_problem(self.address)) from None
        except (ConnectionError, OSError) as exc:
            raise ClusterError(f"lost the Ray cluster at {self.address}: {exc}") from None
        except RuntimeError as exc:  # the Jobs API's answer to a bad request
            raise ClusterError(_first_line(str(exc))) from None


def shown(name: str, most: int = 80) -> str:
    """A sweep name or job id as an error quotes it: escaped, and a long one cut short,
    since a 10,000-character argument made a 10,000-character error line."""
    if len(name) <= most:
        return repr(name)
    return f"{name[:most]!r}... ({len(name)} characters)"


def check_jobs_address(address: str | None) -> str:
    """The Jobs API address, which is the dashboard's URL: http(s)://HEAD:8265."""
    if not address:
        raise ClusterError("no cluster address: set RAY_ADDRESS=http://HEAD:8265 or --address")
    try:
        parsed = urlparse(address)
        parsed.port  # noqa: B018 - parses the port: "[::1" and ":99999" raise here
    except ValueError as exc:  # urllib's own words, not a traceback
        raise ClusterError(f"address {redacted(address)!r}: not a URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ClusterError(
            f"address {redacted(address)!r}: the Ray Jobs API is an http(s):// URL "
            "(http://HEAD:8265)"
        )
    if has_login(address):
        # Each error line echoed the address, password and all; and the login went out
        # as HTTP basic auth in place of the cluster's token, which the head refused.
        raise ClusterError(
            f"address {redacted(address)!r}: the Ray Jobs API takes no login in its URL; "
            "the cluster's token goes in RAY_AUTH_TOKEN"
        )
    return address.rstrip("/")


def redacted(address: str) -> str:
    """The address without what stands before an "@" in it (a login), fit to print."""
    scheme, sep, rest = address.rpartition("://")
    netloc, slash, path = rest.partition("/")
    if "@" not in netloc:
        return address
    return f"{scheme}{sep}***@{netloc.rpartition('@')[2]}{slash}{path}"


# (connect, read) seconds for each Jobs API request. Ray's client sets none: a head
# whose port accepts connections but never answers (a hung dashboard, a firewall that
# swallows packets) held `tuner status` for as long as anyone waited.
JOBS_API_TIMEOUT_S = (10.0, 60.0)


class _BoundedClient(JobSubmissionClient):
    """Ray's Jobs API client, each request bounded by JOBS_API_TIMEOUT_S."""

    def _do_request(self, method: str, endpoint: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", JOBS_API_TIMEOUT_S)
        return super()._do_request(method, endpoint, **kwargs)


def connect(address: str) -> JobSubmissionClient:
    """A Jobs API client that sends the cluster's token (RAY_AUTH_TOKEN, ~/.ray/auth_token)."""
    use_token_auth_if_available()
    try:
        return _BoundedClient(address)
    except AuthenticationError:
        raise ClusterError(_token_problem(address)) from None
    except (ConnectionError, OSError) as exc:
        raise ClusterError(
            f"cannot reach the Ray Jobs API at {address}: {_first_line(str(exc))}"
        ) from None


def _token_problem(address: str) -> str:
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return f"the Ray cluster at {address} rejected the auth token (is it the cluster's?)"
    return f"the Ray cluster at {address} wants an auth token: set RAY_AUTH_TOKEN"


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else text
