"""Runs take turns at the tracking store: each run's pending writes go out together, one
request (or a few, past MLflow's batch limits) per run per turn, at most one in flight
per run so that its writes stay in order, and runs side by side up to the pool's size.

Under load the turns come round more slowly and each request carries more points, so
the lag stays about one round of the running trials instead of growing without end; no
run waits on another's slow request, as it would if every window waited for its last.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

Item = TypeVar("Item")


class RunTurns(Generic[Item]):
    """Per-run queues of items, written by `write(run, items)` on `pool` (first in,
    first out, so runs take turns), or on the caller's thread where there is no pool."""

    def __init__(
        self,
        write: Callable[[str, list[Item]], None],
        pool: ThreadPoolExecutor | None,
        max_items: int,
    ) -> None:
        self._write = write
        self._pool = pool
        self._max_items = max_items
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._pending: dict[str, list[Item]] = {}
        self._items = 0  # pending or being written
        self._scheduled: set[str] = set()  # runs with a write queued or in flight

    def wait_for_room(self) -> None:
        """Block while `max_items` items wait or are being written: the caller stops
        taking work, so whatever feeds it (a bounded queue) feels the back-pressure and
        memory stays bounded however slow the store."""
        with self._room:
            self._room.wait_for(lambda: self._items < self._max_items)

    def add(self, items: Iterable[tuple[str, Item]]) -> None:
        """Queue each item for its run; a run with nothing queued or in flight gets a turn."""
        ready: list[str] = []
        with self._lock:
            for run, item in items:
                self._pending.setdefault(run, []).append(item)
                self._items += 1
                if run not in self._scheduled:
                    self._scheduled.add(run)
                    ready.append(run)
        for run in ready:
            self._schedule(run)

    def _schedule(self, run: str) -> None:
        if self._pool is None:
            self._turn(run)
        else:
            self._pool.submit(self._turn, run)

    def _turn(self, run: str) -> None:
        """Everything the run has pending; what arrives meanwhile waits for its next turn,
        at the back of the queue."""
        with self._lock:
            items = self._pending.pop(run)
        try:
            self._write(run, items)
        finally:  # even if the write raised, the run's later items get their turn
            with self._room:
                self._items -= len(items)
                self._room.notify_all()
                again = run in self._pending
                if not again:
                    self._scheduled.discard(run)
            if again:
                self._schedule(run)
