"""Spot preemption watcher: drain this Ray node when EC2 announces an interruption.

Ray counts a trial whose node died as a failure unless the node was drained with
reason PREEMPTION first. EC2 gives about two minutes' notice through the instance
metadata service (IMDSv2, `spot/instance-action`); this watcher polls it and, on a
notice, asks Ray to drain the node (`ray drain-node`, Ray's own mechanism), so its
trials restart from their checkpoints elsewhere without counting against
`max_failures`. Run on every spot worker (the infra's boot script makes it a service).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

IMDS_URL = "http://169.254.169.254"
TOKEN_TTL_S = 21_600  # IMDSv2 session tokens live up to 6 hours
HTTP_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Notice:
    action: str  # "terminate", "stop" or "hibernate"
    time: datetime  # when EC2 will act

    def seconds_left(self, now: datetime | None = None) -> int:
        now = now or datetime.now(timezone.utc)
        return max(0, int((self.time - now).total_seconds()))


class MetadataService:
    """The few IMDSv2 calls the watcher needs: a session token and the spot notice."""

    def __init__(self, base_url: str = IMDS_URL) -> None:
        self._base = base_url.rstrip("/")
        self._token: str | None = None
        self._token_expires = 0.0

    def _session_token(self) -> str:
        if self._token is None or time.monotonic() > self._token_expires:
            request = Request(
                f"{self._base}/latest/api/token",
                method="PUT",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_S)},
            )
            with urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                self._token = response.read().decode()
            self._token_expires = time.monotonic() + TOKEN_TTL_S - 60
        return self._token

    def spot_notice(self) -> Notice | None:
        """The pending interruption, or None (404: no notice)."""
        request = Request(
            f"{self._base}/latest/meta-data/spot/instance-action",
            headers={"X-aws-ec2-metadata-token": self._session_token()},
        )
        try:
            with urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                body = json.loads(response.read().decode())
        except HTTPError as exc:
            if exc.code == 404:
                return None
            if exc.code == 401:  # token expired early: get a new one next poll
                self._token = None
                return None
            raise
        when = datetime.fromisoformat(body["time"].replace("Z", "+00:00"))
        return Notice(action=body["action"], time=when)


def drain_command(address: str | None, node_id: str | None, notice: Notice) -> list[str]:
    """Ray's own drain request, with the deadline EC2 announced."""
    command = [
        sys.executable, "-m", "ray.scripts.scripts", "drain-node",
        "--reason", "DRAIN_NODE_REASON_PREEMPTION",
        "--reason-message", f"EC2 spot interruption: {notice.action} at {notice.time.isoformat()}",
        "--deadline-remaining-seconds", str(notice.seconds_left()),
    ]  # fmt: skip
    if address:
        command += ["--address", address]
    if node_id:
        command += ["--node-id", node_id]  # default: the node this runs on
    return command


def watch(
    metadata: MetadataService,
    drain: Callable[[Notice], None],
    poll_s: float = 5.0,
    log: Callable[[str], None] = print,
) -> Notice:
    """Poll until EC2 announces an interruption, drain, and return the notice.

    The metadata service being briefly unreachable is not an interruption: keep polling.
    """
    while True:
        try:
            notice = metadata.spot_notice()
        except (URLError, OSError) as exc:
            log(f"metadata service unreachable ({exc}); retrying")
            notice = None
        if notice is not None:
            log(f"spot interruption notice: {notice.action} at {notice.time.isoformat()}")
            drain(notice)
            return notice
        time.sleep(poll_s)


def drain_with_ray(address: str | None, node_id: str | None) -> Callable[[Notice], None]:
    def drain(notice: Notice) -> None:
        # Token auth stays on: a token in the environment or ~/.ray reaches `ray drain-node`.
        from tuner.engine.session import use_token_auth_if_available

        use_token_auth_if_available()
        subprocess.run(drain_command(address, node_id, notice), check=True, timeout=120)

    return drain
