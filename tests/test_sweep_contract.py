"""One contract, every searcher x scheduler: a small sweep completes with its trials."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient
from rich.console import Console

from tuner.engine.runner import RunOptions, run_sweep
from tuner.search.asha import RecordingASHAScheduler
from tuner.search.early_stops import EarlyStops
from tuner.search.optuna_search import PruningOptunaSearch
from tuner.spec import SweepSpec, parse_spec
from tuner.tracking.tags import TAG_PARENT

pytestmark = pytest.mark.ray

EPOCHS = 4
RANGES: dict[str, Any] = {
    "lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True},
    "hidden": {"type": "int", "low": 8, "high": 32, "log": True},
    "optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
}
SEARCHERS: dict[str, tuple[dict[str, Any], dict[str, Any], int]] = {
    # name: (searcher, params, num_samples)
    "grid": (
        {"kind": "grid"},
        {"optimizer": RANGES["optimizer"], "hidden": {"type": "grid", "values": [8, 16]}},
        1,
    ),
    "random": (
        {"kind": "random", "seed": 1},
        {**RANGES, "batch_size": {"type": "grid", "values": [32, 64]}},
        2,
    ),
    **{
        f"optuna-{sampler}": ({"kind": "optuna", "sampler": sampler, "seed": 1}, RANGES, 4)
        for sampler in ("tpe", "gp", "cmaes", "random")
    },
}
SCHEDULERS: dict[str, dict[str, Any]] = {
    "fifo": {"kind": "fifo"},
    "asha": {"kind": "asha", "max_t": EPOCHS, "grace_period": 1, "reduction_factor": 2},
}


def small_sweep(name: str, searcher: str, scheduler: str) -> SweepSpec:
    search, params, num_samples = SEARCHERS[searcher]
    return parse_spec(
        {
            "name": name,
            "trainable": "builtin:classifier",
            "metric": "val_accuracy",
            "mode": "max",
            "num_samples": num_samples,
            "searcher": search,
            "scheduler": SCHEDULERS[scheduler],
            "max_concurrent_trials": 2,
            "params": params,
            "config": {"epochs": EPOCHS},
        }
    )


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("searcher", SEARCHERS)
def test_every_searcher_with_every_scheduler(
    ray_session: None, tmp_path: Path, searcher: str, scheduler: str
) -> None:
    spec = small_sweep(f"contract-{searcher}-{scheduler}", searcher, scheduler)
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_sweep(
        spec,
        RunOptions(
            tracking_uri=tracking_uri,
            storage=str(tmp_path / "runs"),
            console=Console(file=io.StringIO()),
        ),
    )
    assert result.num_trials == spec.expected_trials()
    assert result.num_failed == 0
    if scheduler == "fifo":
        assert result.num_stopped_early == 0
    assert result.best is not None and 0.0 <= result.best.value <= 1.0
    assert set(result.best.params) == set(spec.params)

    children = MlflowClient(tracking_uri).search_runs(
        [result.experiment_id], filter_string=f"tags.`{TAG_PARENT}` = '{result.parent_run_id}'"
    )
    assert len(children) == spec.expected_trials()
    killed = [run for run in children if run.info.status == "KILLED"]
    assert len(killed) == result.num_stopped_early


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

    pruned, complete = search._ot_study.trials
    assert search._ot_study.study_name == "pruned-check"
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
        trial = SimpleNamespace(trial_id=trial_id)
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


def test_early_stop_ledger_survives_ray_pickling_as_one_ledger() -> None:
    """Ray unpickles the scheduler, the searcher and our callbacks apart on restore; each
    copy must be the one ledger of its experiment, or ASHA's stops never reach Optuna."""
    import pickle

    ledger = EarlyStops.shared("s3://bucket/sweep/run-1")
    ledger.add("trial_a")
    scheduler_copy, searcher_copy = pickle.loads(pickle.dumps([ledger, ledger]))
    assert scheduler_copy is ledger and searcher_copy is ledger
    assert "trial_a" in pickle.loads(pickle.dumps(ledger))
    assert EarlyStops.shared("s3://bucket/sweep/run-2") is not ledger
