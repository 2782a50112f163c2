"""Runs taking turns at the tracking store (tracking.run_turns): each run's writes in
order and one at a time, a slow run holding back no other, what arrives during a run's
write going out together in its next turn, and no more items held than the bound."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tuner.tracking.run_turns import RunTurns

WAIT_S = 10


class Store:
    """Records each write (run, items) and, for runs told to, holds it until released."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, list[int]]] = []
        self.in_flight: dict[str, int] = defaultdict(int)
        self.overlapped: list[str] = []  # runs seen with two writes at once
        self.held: dict[str, threading.Event] = {}
        self.started: dict[str, threading.Event] = defaultdict(threading.Event)
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)

    def write(self, run: str, items: list[int]) -> None:
        with self.lock:
            self.in_flight[run] += 1
            if self.in_flight[run] > 1:
                self.overlapped.append(run)
        self.started[run].set()
        if run in self.held:
            assert self.held[run].wait(WAIT_S)
        with self.done:
            self.in_flight[run] -= 1
            self.writes.append((run, items))
            self.done.notify_all()

    def wait_for(self, items: int) -> None:
        with self.done:
            assert self.done.wait_for(lambda: sum(len(i) for _, i in self.writes) >= items, WAIT_S)

    def items_of(self, run: str) -> list[int]:
        return [item for name, items in self.writes if name == run for item in items]


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as executor:
        yield executor


def test_each_runs_items_arrive_in_order_and_never_two_writes_at_once(
    pool: ThreadPoolExecutor,
) -> None:
    store = Store()
    turns = RunTurns(store.write, pool, 1000)
    runs = [f"run{n}" for n in range(5)]
    for item in range(200):
        turns.add([(runs[item % len(runs)], item)])
    store.wait_for(200)

    for n, run in enumerate(runs):
        assert store.items_of(run) == list(range(n, 200, len(runs)))
    assert store.overlapped == []


def test_a_slow_run_holds_back_no_other_and_gets_its_points_in_one_turn(
    pool: ThreadPoolExecutor,
) -> None:
    store = Store()
    store.held["slow"] = threading.Event()
    turns = RunTurns(store.write, pool, 1000)
    turns.add([("slow", 0)])
    assert store.started["slow"].wait(WAIT_S)
    # While the slow run's request hangs, its results pile up and the others are written.
    for item in range(1, 4):
        turns.add([("slow", item), ("fast", item)])
    store.wait_for(3)
    assert store.items_of("fast") == [1, 2, 3]
    assert store.items_of("slow") == []

    store.held["slow"].set()
    store.wait_for(7)
    # One write for what was in flight, one for everything that arrived meanwhile.
    assert [items for run, items in store.writes if run == "slow"] == [[0], [1, 2, 3]]


def test_without_a_pool_each_run_is_written_on_the_callers_thread_at_once() -> None:
    store = Store()
    turns = RunTurns(store.write, None, 1000)
    turns.add([("a", 1), ("b", 2), ("a", 3)])
    # Nothing is left to wait for: the call returns once the writes are done.
    assert store.writes == [("a", [1, 3]), ("b", [2])]


def test_past_its_bound_the_caller_waits_until_the_store_catches_up(
    pool: ThreadPoolExecutor,
) -> None:
    store = Store()
    store.held["slow"] = threading.Event()
    turns = RunTurns(store.write, pool, 3)
    turns.add([("slow", 0)])
    turns.add([("slow", 1), ("slow", 2)])
    assert store.started["slow"].wait(WAIT_S)
    waited = threading.Event()

    def wait() -> None:
        turns.wait_for_room()
        waited.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    # Three items held (one being written, two pending): no room until the store answers.
    assert not waited.wait(0.5)
    store.held["slow"].set()
    assert waited.wait(WAIT_S)
    waiter.join()
    store.wait_for(3)
    assert store.items_of("slow") == [0, 1, 2]
