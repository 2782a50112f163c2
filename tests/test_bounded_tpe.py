"""searcher.history: TPE over the best trials and the latest ones, so that its time per
suggestion stops growing with the study (tuner/search/bounded_tpe.py)."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers._tpe.sampler import _split_trials
from optuna.trial import TrialState, create_trial

from tests.test_spec import mutate, write
from tuner import load_spec
from tuner.search.bounded_tpe import GOOD_TRIALS, BoundedTPESampler
from tuner.search.optuna_search import build_sampler
from tuner.spec import SpecError

SPACE = {
    "lr": FloatDistribution(1e-4, 0.3, log=True),
    "hidden": IntDistribution(16, 256, log=True),
    "optimizer": CategoricalDistribution(["sgd", "adam", "adamw"]),
}


def score(params: dict[str, Any]) -> float:
    lr, hidden = float(params["lr"]), int(params["hidden"])
    return -((math.log10(lr) + 2) ** 2) - (math.log2(hidden) - 6) ** 2 / 4


def study_with(sampler: optuna.samplers.BaseSampler, trials: int) -> optuna.Study:
    """A study whose first `trials` were drawn at random, some pruned, as a sweep's are."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    rng = random.Random(1)
    for number in range(trials):
        params: dict[str, object] = {
            "lr": 10 ** rng.uniform(-4, math.log10(0.3)),
            "hidden": rng.randint(16, 256),
            "optimizer": rng.choice(["sgd", "adam", "adamw"]),
        }
        if number % 5 == 4:  # a trial ASHA stopped: pruned, with its intermediate value
            study.add_trial(
                create_trial(
                    params=params, distributions=SPACE, state=TrialState.PRUNED,
                    intermediate_values={1: score(params) - 1},
                )
            )  # fmt: skip
        else:
            study.add_trial(create_trial(params=params, distributions=SPACE, value=score(params)))
    return study


def suggestions(study: optuna.Study, count: int) -> list[dict[str, object]]:
    made = []
    for _ in range(count):
        trial = study.ask(SPACE)
        made.append(trial.params)
        study.tell(trial, score(trial.params))
    return made


def test_within_its_history_it_samples_as_optunas_tpe() -> None:
    plain = study_with(optuna.samplers.TPESampler(seed=3, constant_liar=True), 300)
    bounded = study_with(BoundedTPESampler(400, seed=3, constant_liar=True), 300)
    assert suggestions(bounded, 20) == suggestions(plain, 20)


def test_past_its_history_tpe_sees_the_best_of_all_and_the_latest() -> None:
    sampler = BoundedTPESampler(250, seed=0, constant_liar=True)
    study = study_with(sampler, 1200)
    running = study.ask(SPACE)  # another slot's trial: the constant liar counts it
    every = study._get_trials(deepcopy=False, states=None)
    seen = sampler.bounded(study, every)
    finished = [t for t in every if t.state != TrialState.RUNNING]
    assert running.number in {t.number for t in seen}
    assert len(seen) == 250 + GOOD_TRIALS + 1
    assert {t.number for t in finished[-250:]} <= {t.number for t in seen}
    for _ in range(3):  # and so on as the sweep goes on: the window moves
        # TPE's good density is built from the same trials as over the whole study.
        good_all = _split_trials(study, finished, GOOD_TRIALS)[0]
        good_seen = _split_trials(study, [t for t in seen if t.state.is_finished()], GOOD_TRIALS)[0]
        assert [t.number for t in good_seen] == [t.number for t in good_all]
        suggestions(study, 10)
        every = study._get_trials(deepcopy=False, states=None)
        finished = [t for t in every if t.state != TrialState.RUNNING]
        seen = sampler.bounded(study, every)


def test_a_trial_that_finishes_late_is_still_weighed() -> None:
    sampler = BoundedTPESampler(250, seed=0, constant_liar=True)
    study = study_with(sampler, 10)
    late = study.ask(SPACE)  # runs while 400 others finish
    study.add_trials(study_with(optuna.samplers.RandomSampler(), 400).trials)
    sampler.bounded(study, study._get_trials(deepcopy=False, states=None))
    study.tell(late, 100.0)  # the best of all, finished outside the window
    seen = sampler.bounded(study, study._get_trials(deepcopy=False, states=None))
    assert late.number in {t.number for t in seen}
    assert suggestions(study, 2)  # and TPE samples with it


def test_sweep_file_history_builds_the_bounded_sampler(tmp_path: Path) -> None:
    data = mutate(searcher={"kind": "optuna", "sampler": "tpe", "seed": 0, "history": 1000})
    spec = load_spec(write(tmp_path, data))
    assert spec.searcher.kind == "optuna" and spec.searcher.history == 1000
    sampler = build_sampler("tpe", 0, history=spec.searcher.history)
    assert isinstance(sampler, BoundedTPESampler)
    conditional = build_sampler("tpe", 0, conditional=True, history=1000)
    assert isinstance(conditional, BoundedTPESampler)
    default = load_spec(write(tmp_path, mutate()))
    assert default.searcher.kind == "optuna" and default.searcher.history is None
    assert not isinstance(build_sampler("tpe", 0), BoundedTPESampler)


@pytest.mark.parametrize(
    ("searcher", "objectives", "problem"),
    [
        ({"history": 100}, None, "searcher.history: Input should be greater than or equal to 250"),
        ({"sampler": "gp", "history": 1000}, None, "searcher.history: bounds TPE's history only"),
        (
            {"history": 1000},
            [{"metric": "val_accuracy", "mode": "max"}, {"metric": "num_params", "mode": "min"}],
            "searcher.history: bounds single-objective TPE only",
        ),
    ],
    ids=["too-short", "not-tpe", "several-objectives"],
)
def test_sweep_file_history_is_checked(
    tmp_path: Path, searcher: dict[str, object], objectives: object, problem: str
) -> None:
    data = mutate(searcher={"kind": "optuna", "sampler": "tpe", **searcher})
    if objectives is not None:
        data["objectives"] = objectives
        del data["metric"], data["mode"]
    with pytest.raises(SpecError, match=problem):
        load_spec(write(tmp_path, data))
