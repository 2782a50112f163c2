"""The one-line news of a trial that failed or lost its worker says when, truly.

It read "failed at epoch 1" for a trial that reported epoch 1 and raised in epoch 2;
a trial that lost its worker before any result read "at epoch " and nothing.
"""

from __future__ import annotations

from tuner.tracking.progress import when_it_ended


def test_a_trial_that_reported_epochs_ended_after_its_last_one() -> None:
    assert when_it_ended({"training_iteration": 3, "epoch": 3}) == "after epoch 3"


def test_the_trainables_own_epoch_is_named_not_tunes_count() -> None:
    # A resumed trial reports epoch 7 at Tune's second iteration of this run.
    assert when_it_ended({"training_iteration": 2, "epoch": 7}) == "after epoch 7"
    assert when_it_ended({"training_iteration": 2}) == "after epoch 2"


def test_a_trial_without_a_result_ended_before_its_first() -> None:
    assert when_it_ended(None) == "before its first result"
    assert when_it_ended({}) == "before its first result"
