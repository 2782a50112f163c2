"""Lost work: the training a trial did twice after losing its worker, counted from what
the driver sees (a repeated epoch's time, and the epoch in flight when it was lost)."""

from __future__ import annotations

import time

import pytest

from tuner.tracking.lost_work import LostWork
from tuner.trainer.checkpoint_policy import RESUMED_WITHIN_EPOCH


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [100.0]
    # lost_work reads the clock as time.monotonic(), through the module, so this reaches it.
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    return now


def test_the_epoch_in_flight_and_the_repeated_epochs_count(clock: list[float]) -> None:
    lost = LostWork()
    lost.started("a")
    for _ in range(3):  # three 2 s epochs
        clock[0] += 2.0
        lost.result("a", {"time_this_iter_s": 2.0}, repeated=False)
    clock[0] += 0.5  # half a second into the fourth epoch, the node goes
    lost.worker_lost("a")
    assert lost.of("a") == pytest.approx(0.5)
    # It restarts from the checkpoint of epoch 2: epoch 3 runs again, then goes on.
    lost.started("a")
    clock[0] += 2.1
    lost.result("a", {"time_this_iter_s": 2.1}, repeated=True)
    clock[0] += 2.0
    lost.result("a", {"time_this_iter_s": 2.0}, repeated=False)
    assert lost.of("a") == pytest.approx(2.6)
    assert lost.total() == pytest.approx(2.6)


def test_a_slow_failure_counts_no_more_than_an_epoch(clock: list[float]) -> None:
    lost = LostWork()
    lost.started("b")
    clock[0] += 1.0
    lost.result("b", {"time_this_iter_s": 1.0}, repeated=False)
    clock[0] += 30.0  # Ray took 30 s to notice the node had gone
    lost.worker_lost("b")
    assert lost.of("b") == pytest.approx(1.0)
    assert lost.of("never-restarted") == 0.0


def test_a_trial_resumed_inside_its_epoch_lost_nothing_of_it(clock: list[float]) -> None:
    lost = LostWork()
    lost.started("c")
    clock[0] += 10.0
    lost.result("c", {"time_this_iter_s": 10.0}, repeated=False)
    # A spot notice 6 s into epoch 2: it checkpoints there, waits, and its node goes.
    clock[0] += 40.0
    lost.worker_lost("c")
    assert lost.of("c") == pytest.approx(10.0)  # until the restart says otherwise
    lost.started("c")
    clock[0] += 4.5
    lost.result("c", {"time_this_iter_s": 4.5, RESUMED_WITHIN_EPOCH: 6.0}, repeated=False)
    assert lost.of("c") == 0.0
    # A later loss without a notice counts as before.
    clock[0] += 3.0
    lost.worker_lost("c")
    lost.started("c")
    clock[0] += 10.0
    lost.result("c", {"time_this_iter_s": 10.0}, repeated=False)
    assert lost.of("c") == pytest.approx(3.0)
