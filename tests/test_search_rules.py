"""Search rules as pure decisions: ASHA's promotion, PRUNED trials reaching Optuna, the
early-stop ledger. No Ray session, no sweep: each runs in milliseconds."""

from __future__ import annotations

import math
import pickle
from typing import cast

import optuna
import pytest
from ray.tune.experiment import Trial

from tuner.search.asha import ParetoASHAScheduler, RecordingASHAScheduler
from tuner.search.early_stops import EarlyStops
from tuner.search.optuna_search import PruningOptunaSearch
from tuner.search.promotion import promoted_count, promotion_cutoff


@pytest.mark.parametrize(
    ("trials", "factor", "promoted"),
    [(1, 3, 1), (2, 3, 1), (3, 3, 1), (5, 3, 1), (6, 3, 2), (7, 3, 2), (9, 3, 3), (8, 2, 4)],
)
def test_the_top_n_over_reduction_factor_of_a_rung_go_on(
    trials: int, factor: float, promoted: int
) -> None:
    assert promoted_count(trials, factor) == promoted


def test_cutoff_is_the_reward_of_the_last_trial_that_goes_on() -> None:
    # The first trial at a rung goes on whatever it scored.
    assert promotion_cutoff([], 3) is None
    # With 6 earlier rewards a 7th trial must rank 2nd of 7 (7 // 3 = 2): beat the 2nd best.
    assert promotion_cutoff([0.1, 0.5, 0.9, 0.3, 0.7, 0.2], 3) == 0.7
    # Fewer than reduction_factor trials: only the best so far goes on.
    assert promotion_cutoff([0.4, 0.6], 3) == 0.6


def test_nan_rewards_recorded_earlier_do_not_count() -> None:
    assert promotion_cutoff([math.nan, 0.5, math.nan], 2) == 0.5


def test_asha_stopped_trials_reach_optuna_as_pruned_with_their_history() -> None:
    stops = EarlyStops()
    search = PruningOptunaSearch(
        stops,
        space={"x": optuna.distributions.FloatDistribution(0.0, 1.0)},
        metric="score",
        mode="max",
        sampler=optuna.samplers.RandomSampler(seed=0),
        study_name="pruned-check",
    )
    # What Tune does: every result reaches on_trial_result except one the scheduler
    # answers with STOP, which goes (as the trial's last result) to on_trial_complete only.
    for trial_id, scores, stopped in (("a", [0.2, 0.3], True), ("b", [0.4, 0.5, 0.9], False)):
        search.suggest(trial_id)
        *reported, last = [
            {"score": score, "training_iteration": epoch}
            for epoch, score in enumerate(scores, start=1)
        ]
        for result in reported if stopped else [*reported, last]:
            search.on_trial_result(trial_id, result)
        if stopped:
            stops.add(trial_id)
        search.on_trial_complete(trial_id, last)

    # OptunaSearch.__init__ sets _ot_study to None, unannotated, so mypy reads it as always
    # None; with a space given it holds the study from the start.
    study = cast("optuna.Study | None", search._ot_study)
    assert study is not None
    pruned, complete = study.trials
    assert study.study_name == "pruned-check"
    assert pruned.state == optuna.trial.TrialState.PRUNED
    # Including the value the scheduler stopped it on, at its epoch.
    assert pruned.intermediate_values == {1: 0.2, 2: 0.3}
    assert complete.state == optuna.trial.TrialState.COMPLETE
    assert complete.value == 0.9


def test_asha_promotes_the_top_third_of_a_rung_counting_the_trial_itself() -> None:
    """Seven trials reach the first rung with losses 1..6 and then x: with reduction
    factor 3, the top 7 // 3 = 2 go on. Ray's own bracket also let a 3rd of 7 through."""
    stops = EarlyStops()
    asha = RecordingASHAScheduler(
        stops, time_attr="training_iteration", max_t=9, grace_period=1, reduction_factor=3
    )
    asha.set_search_properties(metric="loss", mode="min")

    def reach_first_rung(trial_id: str, loss: float) -> str:
        trial = Trial("null", stub=True, trial_id=trial_id)
        asha.on_trial_add(None, trial)
        decision: str = asha.on_trial_result(None, trial, {"training_iteration": 1, "loss": loss})
        return decision

    # The first trial goes on, each of the next only while it is the best so far.
    assert reach_first_rung("t1", 4.0) == "CONTINUE"
    assert reach_first_rung("t2", 5.0) == "STOP"
    assert reach_first_rung("t3", 3.0) == "CONTINUE"
    for trial_id, loss in (("t4", 1.0), ("t5", 2.0), ("t6", 6.0)):
        reach_first_rung(trial_id, loss)
    assert reach_first_rung("third-of-7", 2.5) == "STOP"
    assert reach_first_rung("second-of-8", 1.5) == "CONTINUE"
    assert "t2" in stops and "third-of-7" in stops and "second-of-8" not in stops


@pytest.mark.parametrize("objectives", [None, [("loss", -1.0), ("ms", -1.0)]])
def test_a_trial_at_max_t_ends_as_its_function_does_and_one_past_it_stops(
    objectives: list[tuple[str, float]] | None,
) -> None:
    """Ray's ASHA stopped a trial at max_t inside its report: code after the function's
    loop (a final log_model) never ran, for the best trials of the sweep."""
    stops = EarlyStops()
    asha = (
        RecordingASHAScheduler(
            stops, time_attr="training_iteration", max_t=3, grace_period=1, reduction_factor=3
        )
        if objectives is None
        else ParetoASHAScheduler(
            stops, objectives, time_attr="training_iteration", max_t=3, grace_period=1,
            reduction_factor=3,
        )
    )  # fmt: skip
    asha.set_search_properties(metric="loss", mode="min")
    trial = Trial("null", stub=True, trial_id="best")
    asha.on_trial_add(None, trial)
    decisions = [
        asha.on_trial_result(None, trial, {"training_iteration": epoch, "loss": 1.0, "ms": 2.0})
        for epoch in (1, 2, 3, 4)
    ]
    assert decisions == ["CONTINUE", "CONTINUE", "CONTINUE", "STOP"]
    assert "best" not in stops  # a normal end, not an early stop
    # A class Trainable's step() has nothing after it: its trials stop at max_t, as in Ray.
    asha.stop_at_max_t = True
    other = Trial("null", stub=True, trial_id="a-class")
    asha.on_trial_add(None, other)
    result = {"training_iteration": 3, "loss": 1.0, "ms": 2.0}
    assert asha.on_trial_result(None, other, result) == "STOP"
    assert "a-class" not in stops


def test_early_stop_ledger_survives_ray_pickling_as_one_ledger() -> None:
    """Ray unpickles the scheduler, the searcher and our callbacks apart on restore; each
    copy must be the one ledger of its experiment, or ASHA's stops never reach Optuna."""
    ledger = EarlyStops.shared("s3://bucket/sweep/run-1")
    ledger.add("trial_a")
    scheduler_copy, searcher_copy = pickle.loads(pickle.dumps([ledger, ledger]))
    assert scheduler_copy is ledger and searcher_copy is ledger
    assert "trial_a" in pickle.loads(pickle.dumps(ledger))
    assert EarlyStops.shared("s3://bucket/sweep/run-2") is not ledger
