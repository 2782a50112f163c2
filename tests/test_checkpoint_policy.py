"""The checkpoint plan as a pure decision, and the plan the engine gives each trial."""

from __future__ import annotations

from typing import Any

import pytest

from tuner.engine.checkpoints import checkpoint_plan, trial_space
from tuner.search.promotion import rung_epochs
from tuner.spec import parse_spec
from tuner.trainer.checkpoint_policy import PLAN_KEY, CheckpointPlan, without_plan


def test_both_bounds_must_hold() -> None:
    plan = CheckpointPlan(every_epochs=2, min_interval_s=10.0)
    assert not plan.due(1, seconds_since_last=60.0, last=False)  # not an every_epochs epoch
    assert not plan.due(2, seconds_since_last=5.0, last=False)  # too soon
    assert plan.due(2, seconds_since_last=10.0, last=False)


def test_forced_epochs_and_the_last_epoch_always_checkpoint() -> None:
    plan = CheckpointPlan(every_epochs=5, min_interval_s=3600.0, forced_epochs=frozenset({3}))
    assert plan.due(3, seconds_since_last=0.0, last=False)
    assert plan.due(7, seconds_since_last=0.0, last=True)
    assert not plan.due(5, seconds_since_last=0.0, last=False)


def test_a_plan_travels_in_the_config_and_the_knobs_never_see_it() -> None:
    plan = CheckpointPlan(every_epochs=3, min_interval_s=1.5, forced_epochs=frozenset({1, 9}))
    config = {"lr": 0.1, PLAN_KEY: plan.as_config()}
    assert CheckpointPlan.from_config(config) == plan
    assert without_plan(config) == {"lr": 0.1}
    # No plan (a built-in called from code of one's own): the sweep file's defaults.
    assert CheckpointPlan.from_config({"lr": 0.1}) == CheckpointPlan()


@pytest.mark.parametrize(
    ("grace", "max_t", "factor", "rungs"),
    [(1, 27, 3, [1, 3, 9, 27]), (1, 4, 2, [1, 2, 4]), (2, 10, 2.5, [2, 5]), (3, 3, 3, [3])],
)
def test_rungs_are_where_ray_asha_judges_a_trial(
    grace: int, max_t: int, factor: float, rungs: list[int]
) -> None:
    assert rung_epochs(grace, max_t, factor) == rungs


def sweep(**overrides: Any) -> Any:
    return parse_spec(
        {
            "name": "plan",
            "trainable": "builtin:classifier",
            "metric": "val_accuracy",
            "mode": "max",
            "params": {"lr": {"type": "float", "low": 1e-3, "high": 0.1}},
            "config": {"epochs": 12},
            **overrides,
        }
    )


def test_asha_forces_checkpoints_at_its_rungs_and_max_t() -> None:
    spec = sweep(
        scheduler={"kind": "asha", "max_t": 10, "grace_period": 1, "reduction_factor": 3},
        checkpoint={"every_epochs": 4, "min_interval_s": 0},
    )
    plan = checkpoint_plan(spec)
    assert plan.forced_epochs == {1, 3, 9, 10}
    assert (plan.every_epochs, plan.min_interval_s) == (4, 0.0)
    # A built-in trial of 12 epochs ends after its 10th: ASHA lets a trial at max_t go on
    # to its function's end, and would stop it an epoch later.
    assert not plan.ends_after(9) and plan.ends_after(10)
    assert CheckpointPlan.from_config({PLAN_KEY: plan.as_config()}) == plan
    assert checkpoint_plan(sweep()).forced_epochs == frozenset()  # fifo judges nobody
    assert not checkpoint_plan(sweep()).ends_after(12)


def test_only_builtin_trials_get_a_plan_in_their_config() -> None:
    assert trial_space(sweep())[PLAN_KEY] == checkpoint_plan(sweep()).as_config()
    user = sweep(trainable="tests.trainables:report_twice", config={"epochs": 3})
    assert PLAN_KEY not in trial_space(user)


def test_the_policy_is_checked_with_the_sweep_file() -> None:
    from tuner.spec import SpecError

    with pytest.raises(SpecError, match=r"checkpoint\.every_epochs"):
        parse_spec({**sweep().model_dump(), "checkpoint": {"every_epochs": 0}})
    with pytest.raises(SpecError, match=r"checkpoint\.min_interval: unknown key"):
        parse_spec({**sweep().model_dump(), "checkpoint": {"min_interval": 5}})
