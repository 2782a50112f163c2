"""Spot interruption notices, from the watcher on a node to the trials running there.

EC2 announces an interruption two minutes ahead. The node's watcher
(tuner.cluster.preemption) posts the notice to a mailbox actor on the head node, and
every trial there learns of it within a moment: a listener thread in the trial
long-polls the mailbox for its own node (through Ray: no shared disk, no polling of
the metadata service by every trial). The trial checkpoints and says so; the watcher
drains the node once every trial on it has, or its grace time is up.

No watcher, no mailbox (a laptop): a listener looks for one now and then, and costs
nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayError

MAILBOX_NAME = "tuner-spot-notices"
MAILBOX_NAMESPACE = "tuner"
LONG_POLL_S = 30.0  # a listener's wait for its node's notice, asked again after
LOOK_AGAIN_S = 10.0  # no mailbox yet (a watcher starts after the trial, or none runs)
# A node that outlives its notice's deadline was not interrupted after all (EC2 can
# withdraw a stop or hibernation): a trial that waited for it trains on.
DEADLINE_MARGIN_S = 15.0


class NoticeMailbox:
    """Notices by node, and which trials on a noticed node have checkpointed.

    An async actor: one waiting call per listening trial, all answered at once when
    their node's notice arrives. Node ids are never reused, so nothing is reset.
    """

    def __init__(self) -> None:
        self._deadlines: dict[str, float] = {}  # node id -> when EC2 acts (Unix time)
        self._posted: dict[str, asyncio.Event] = {}
        # Trials with a wait under way: alive, as a trial whose process died is not.
        self._waiting: dict[str, set[str]] = {}
        self._told: dict[str, set[str]] = {}  # node id -> trials that heard its notice
        self._saved: dict[str, set[str]] = {}

    def _event(self, node_id: str) -> asyncio.Event:
        return self._posted.setdefault(node_id, asyncio.Event())

    async def announce(self, node_id: str, deadline: float) -> None:
        self._deadlines[node_id] = deadline
        told = self._told.setdefault(node_id, set())
        told.update(self._waiting.get(node_id, set()))
        self._event(node_id).set()

    async def wait(self, node_id: str, trial_id: str, timeout_s: float) -> float | None:
        """The node's deadline once a notice for it arrives; None after `timeout_s`."""
        if node_id in self._deadlines:  # it came before this trial listened
            self._told.setdefault(node_id, set()).add(trial_id)
            return self._deadlines[node_id]
        waiting = self._waiting.setdefault(node_id, set())
        waiting.add(trial_id)
        try:
            await asyncio.wait_for(self._event(node_id).wait(), timeout_s)
        except asyncio.TimeoutError:
            return None
        finally:
            waiting.discard(trial_id)
        return self._deadlines[node_id]

    async def saved(self, node_id: str, trial_id: str) -> None:
        self._saved.setdefault(node_id, set()).add(trial_id)

    async def leave(self, node_id: str, trial_id: str) -> None:
        self._told.get(node_id, set()).discard(trial_id)

    async def outstanding(self, node_id: str) -> list[str]:
        """The trials that heard the node's notice, are alive and have not checkpointed.

        Only trials waiting when the notice came (or asking after it) count. One whose
        process ended without leaving (a trainable of your own never leaves) stops
        counting once its last wait runs out (at most LONG_POLL_S), instead of holding
        every later drain on the node for the whole grace time.
        """
        return sorted(self._told.get(node_id, set()) - self._saved.get(node_id, set()))


def open_mailbox() -> Any:
    """The cluster's mailbox, started if need be: on the head node, which is no spot
    instance, and detached, so it outlives the watcher that started it."""
    return (
        ray.remote(NoticeMailbox)
        .options(
            name=MAILBOX_NAME,
            namespace=MAILBOX_NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            resources={"node:__internal_head__": 0.001},
            max_restarts=-1,
        )
        .remote()
    )


def find_mailbox() -> Any | None:
    try:
        return ray.get_actor(MAILBOX_NAME, namespace=MAILBOX_NAMESPACE)
    except ValueError:
        return None


class NoticeListener:
    """One trial's ear for its node's notice, on a daemon thread."""

    def __init__(self, trial_id: str, node_id: str) -> None:
        self.trial_id, self.node_id = trial_id, node_id
        self.deadline: float | None = None  # Unix time EC2 acts, once noticed
        self.told_trainable = False  # should_checkpoint() said True
        self._told_mailbox = False
        self._noticed = threading.Event()
        self._closed = threading.Event()
        self._mailbox: Any | None = None
        threading.Thread(target=self._listen, name="tuner-spot-notices", daemon=True).start()

    def _listen(self) -> None:
        while not self._closed.is_set():
            mailbox = find_mailbox()
            if mailbox is None:
                self._closed.wait(LOOK_AGAIN_S)
                continue
            self._mailbox = mailbox
            try:
                call = mailbox.wait.remote(self.node_id, self.trial_id, LONG_POLL_S)
                deadline = ray.get(call, timeout=LONG_POLL_S + 30)
            except (RayError, GetTimeoutError):  # a restarting mailbox: ask again
                self._closed.wait(1.0)
                continue
            if deadline is not None:
                self.deadline = float(deadline)
                self._noticed.set()
                return

    def noticed(self) -> bool:
        return self._noticed.is_set()

    def saved(self) -> None:
        """Tell the watcher this trial has its checkpoint: the node may go."""
        if self._mailbox is not None and not self._told_mailbox:
            self._told_mailbox = True
            self._tell(self._mailbox.saved.remote(self.node_id, self.trial_id))

    def wait_for_the_end(self) -> None:
        """Hold training until the node is gone: whatever it trained now would be lost.
        A node still here past its deadline (and a margin) was spared: return."""
        if self.deadline is not None:
            self._closed.wait(max(0.0, self.deadline + DEADLINE_MARGIN_S - time.time()))

    def close(self) -> None:
        self._closed.set()
        if self._mailbox is not None:
            self._tell(self._mailbox.leave.remote(self.node_id, self.trial_id))

    @staticmethod
    def _tell(call: Any) -> None:
        # The watcher's grace time covers a message that did not arrive.
        with contextlib.suppress(RayError, GetTimeoutError):
            ray.get(call, timeout=10)


_listener: NoticeListener | None = None


def listen(trial_id: str) -> NoticeListener:
    """This process's listener for `trial_id`, started on first use (an actor reused
    for another trial gets a new one)."""
    global _listener
    if _listener is None or _listener.trial_id != trial_id:
        if _listener is not None:
            _listener.close()
        _listener = NoticeListener(trial_id, ray.get_runtime_context().get_node_id())
    return _listener


def stop_listening() -> None:
    global _listener
    if _listener is not None:
        _listener.close()
        _listener = None


def should_checkpoint() -> bool:
    """For a trainable of your own: True once, at the first call after a spot
    interruption notice reached this trial's node.

    Call it at every step. When it says True, report a checkpoint with this step's
    `tune.report`: the restarted trial goes on from it. The next call tells the watcher
    the checkpoint is saved (the node is then drained) and says False. Training after
    that checkpoint is lost with the node unless you checkpoint again. Outside a trial,
    or with no watcher on the cluster, always False.
    """
    trial_id = _trial_id()
    if trial_id is None:
        return False
    listener = listen(trial_id)
    if not listener.noticed():
        return False
    if not listener.told_trainable:
        listener.told_trainable = True
        return True
    listener.saved()  # once
    return False


def _trial_id() -> str | None:
    from ray.train._internal.session import get_session

    session = get_session()
    return None if session is None else str(session.trial_id)
