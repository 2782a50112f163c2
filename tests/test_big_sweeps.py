"""What the report draws of a sweep of thousands of trials (tuner/tracking/big_sweeps.py):
importances judged on a seeded sample that still names the param that matters, learning
curves of the best trials and a sample of the rest, and the plot of importances handed
the values already judged."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from typing import Literal

import optuna
import pytest
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from tuner.tracking.big_sweeps import (
    IMPORTANCE_TRIALS,
    curves_drawn,
    importance_evaluator,
    judged_on_sample,
    known_importances,
)

Direction = Literal["minimize", "maximize"]

SPACE: dict[str, BaseDistribution] = {
    "x": optuna.distributions.FloatDistribution(0, 1),
    "noise": optuna.distributions.FloatDistribution(0, 1),
}


def sweep(trials: int, direction: Direction = "maximize") -> optuna.Study:
    """`trials` finished trials whose value is x plus a little noise, a few failed."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(1)
    study = optuna.create_study(direction=direction)
    for number in range(trials):
        x, noise = rng.random(), rng.random()
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.FAIL if number % 50 == 7 else TrialState.COMPLETE,
                value=None if number % 50 == 7 else x + noise / 20,
                params={"x": x, "noise": noise},
                distributions=SPACE,
                intermediate_values={1: x / 2, 2: x},
            )
        )
    return study


def value_of(trial: FrozenTrial) -> float:
    """A finished trial's value, which optuna types as optional."""
    assert trial.value is not None, f"trial {trial.number} finished without a value"
    return trial.value


def test_a_small_sweep_is_judged_and_drawn_whole() -> None:
    study = sweep(120)
    assert judged_on_sample(study) is study
    drawn, which = curves_drawn(study)
    assert drawn is study and which == ""


def test_importances_of_a_big_sweep_come_from_a_seeded_sample_that_names_what_matters() -> None:
    study = sweep(1300)
    judged = judged_on_sample(study)
    assert len(judged.trials) == IMPORTANCE_TRIALS
    assert all(trial.state == TrialState.COMPLETE for trial in judged.trials)
    again = judged_on_sample(study)  # the same report every time it is drawn
    assert [t.params for t in again.trials] == [t.params for t in judged.trials]
    importances = optuna.importance.get_param_importances(judged, evaluator=importance_evaluator())
    assert max(importances, key=importances.__getitem__) == "x"


def test_shallow_trees_judge_importances_as_optunas_deep_ones_do() -> None:
    # The report's trees stop at FANOVA_MAX_DEPTH (several times faster on a sample of
    # hundreds of trials); what a user reads, each param's share, stays the same.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(2)
    space = {**SPACE, "kind": optuna.distributions.CategoricalDistribution(["a", "b", "c"])}
    study = optuna.create_study(direction="maximize")
    for _ in range(300):
        x, noise, kind = rng.random(), rng.random(), rng.choice("abc")
        value = math.sin(6 * x) + 0.5 * noise * (kind == "b") + 0.3 * rng.random()
        study.add_trial(
            optuna.trial.create_trial(
                value=value, params={"x": x, "noise": noise, "kind": kind}, distributions=space
            )
        )

    def importances(evaluator: optuna.importance.BaseImportanceEvaluator) -> dict[str, float]:
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))

    shallow = importances(importance_evaluator())  # the report's, FANOVA_MAX_DEPTH deep
    deep = importances(optuna.importance.FanovaImportanceEvaluator(seed=0, max_depth=64))
    assert list(shallow) == list(deep)  # the same order
    assert all(abs(shallow[name] - deep[name]) < 0.02 for name in deep)


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_learning_curves_of_a_big_sweep_show_its_best_trials(direction: Direction) -> None:
    study = sweep(1300, direction)
    drawn, which = curves_drawn(study, best=100)
    assert len(drawn.trials) == 200
    assert which == "200 of 1300 trials: the best 100 and others at random"
    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    best = sorted(value_of(t) for t in finished)
    best = best[-100:] if direction == "maximize" else best[:100]
    assert set(best) <= {t.value for t in drawn.trials}


def test_the_plot_of_importances_shows_the_values_judged_once() -> None:
    study = sweep(60)
    known = known_importances({"x": 0.9, "noise": 0.1})
    assert optuna.importance.get_param_importances(study, evaluator=known) == {
        "x": 0.9,
        "noise": 0.1,
    }
    assert known.evaluate(study, params=["noise"]) == {"noise": 0.1}


def test_reading_a_sweep_back_needs_neither_ray_nor_scikit_learn() -> None:
    """`tuner report` imports scikit-learn (fANOVA's forests, about 2 s) in a thread
    while it reads the sweep back, and Ray not at all: both only slowed the command."""
    probe = (
        "import sys; import tuner.tracking.report, tuner.tracking.study; "
        "from tuner.tracking.big_sweeps import prefetch_importances; "
        "print(sorted({'ray', 'sklearn'} & set(sys.modules))); "
        "prefetch_importances().join(timeout=120); "
        "print(sorted({'ray', 'sklearn', 'optuna.importance'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "['optuna.importance', 'sklearn']"]
