"""Objects shared by key (tuner.search.shared_by_key): what Ray unpickles on a restore,
apart from everything else, is the driver's one object for the experiment."""

from __future__ import annotations

import pickle

import pytest

from tuner.engine.budget import BudgetStop
from tuner.engine.ended_trials import EndedTrials
from tuner.search.early_stops import EarlyStops
from tuner.search.shared_by_key import SharedByKey


@pytest.mark.parametrize("kind", [EarlyStops, BudgetStop, EndedTrials])
def test_a_pickled_copy_is_the_process_s_one_object_for_its_key(
    kind: type[SharedByKey],
) -> None:
    one = kind.shared("/sweeps/a")
    assert kind.shared("/sweeps/a") is one
    assert pickle.loads(pickle.dumps(one)) is one
    assert kind.shared("/sweeps/b") is not one


def test_what_one_copy_records_every_copy_sees() -> None:
    ledger = EarlyStops.shared("/sweeps/seen")
    copy = pickle.loads(pickle.dumps(ledger))
    copy.add("trial_1")
    assert "trial_1" in EarlyStops.shared("/sweeps/seen")
    assert len(ledger) == 1


def test_each_class_keeps_its_own_objects_for_a_key() -> None:
    # The budget and the ledgers of one experiment share its path as their key.
    key = "/sweeps/one-experiment"
    budget, stops, ended = BudgetStop.shared(key), EarlyStops.shared(key), EndedTrials.shared(key)
    assert isinstance(budget, BudgetStop)
    assert isinstance(stops, EarlyStops)
    assert isinstance(ended, EndedTrials)
    assert pickle.loads(pickle.dumps(budget)) is budget
