"""Spot preemption watcher: checkpoint this node's trials and drain it when EC2
announces an interruption.

EC2 gives about two minutes' notice through the instance metadata service (IMDSv2,
`spot/instance-action`); this watcher polls it. On a notice it first tells the trials
on its node (tuner.trainer.notices): each checkpoints at its next optimizer step, so a
restart loses seconds of training, not the epoch in flight. Once they all have, or
the grace time is up, it asks Ray to drain the node (`ray drain-node`, Ray's own
mechanism): Ray counts a trial whose node died as a failure unless the node was
drained with reason PREEMPTION first, so the trials restart elsewhere without counting
against `max_failures`. Run on every spot worker (the infra's boot script makes it a
service).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
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
    between_polls: Callable[[], None] = lambda: None,
) -> Notice:
    """Poll until EC2 announces an interruption, drain, and return the notice.

    The metadata service being briefly unreachable is not an interruption: keep polling.
    """
    while True:
        between_polls()
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


class TrialWarning:
    """Tells the trials on a node of its notice, and waits until they have checkpointed.

    The watcher joins the cluster as a Ray driver and opens the notice mailbox ahead of
    any notice, so trials already listen when one comes. Ray may not be up yet when the
    watcher starts (they start together at boot): it tries again between polls.
    """

    # Left for `ray drain-node` and the trials' restart before EC2 acts.
    DRAIN_MARGIN_S = 20.0

    def __init__(self, address: str | None, node_id: str | None, grace_s: float) -> None:
        self.address, self.node_id, self.grace_s = address, node_id, grace_s
        self._mailbox: Any | None = None
        self._failure_told = False

    def connect(self, log: Callable[[str], None]) -> None:
        if self._mailbox is not None:
            return
        try:
            import ray

            from tuner.engine.session import use_token_auth_if_available
            from tuner.trainer.notices import MAILBOX_NAMESPACE, open_mailbox

            use_token_auth_if_available()
            if not ray.is_initialized():
                ray.init(
                    address=self.address or "auto",
                    namespace=MAILBOX_NAMESPACE,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
            self.node_id = self.node_id or ray.get_runtime_context().get_node_id()
            mailbox = open_mailbox()
            ray.get(mailbox.outstanding.remote(self.node_id), timeout=60)  # it is up
            self._mailbox = mailbox
            log(f"trials on node {self.node_id} will hear of a spot notice")
        except Exception as exc:  # Ray not up yet: the next poll tries again
            if not self._failure_told:
                log(f"cannot reach Ray to warn trials yet ({exc}); retrying")
                self._failure_told = True

    def warn(self, notice: Notice, log: Callable[[str], None]) -> None:
        """Post the notice, then wait for every listening trial's checkpoint, at most
        the grace time (and never past what EC2 leaves for the drain)."""
        self.connect(log)
        if self._mailbox is None:
            log("trials not warned: Ray unreachable; they restart from their last checkpoint")
            return
        import ray

        wait_s = min(self.grace_s, max(0.0, notice.seconds_left() - self.DRAIN_MARGIN_S))
        started = time.monotonic()
        ray.get(self._mailbox.announce.remote(self.node_id, notice.time.timestamp()))
        while True:
            waiting = ray.get(self._mailbox.outstanding.remote(self.node_id))
            took = time.monotonic() - started
            if not waiting:
                log(f"the node's trials have checkpointed ({took:.1f} s)")
                return
            if took >= wait_s:
                log(f"{len(waiting)} trial(s) had not checkpointed after {took:.0f} s: draining")
                return
            time.sleep(0.2)
