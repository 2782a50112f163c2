"""Ended trials leave Ray Tune's driver, and the sweep still counts them and finds its best.

What stays is chosen from the trials' last results (unit tests), a real Ray Tune run lets
the others go for good (nothing refers to them any more), and a sweep through the CLI,
stopped by its budget and resumed, counts every trial and names the true best.
"""

from __future__ import annotations

import gc
import io
import math
import signal
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from mlflow import MlflowClient
from ray import tune
from rich.console import Console

from tests.conftest import run_and_signal, run_cli
from tuner.engine.ended_trials import EndedTrials, trials_to_keep
from tuner.search.early_stops import EarlyStops
from tuner.search.fifo_order import InOrderFIFOScheduler
from tuner.spec import parse_spec
from tuner.tracking.progress import MAX_ROWS, ProgressTable, row_rank


def spec_of(**extra: Any) -> Any:
    sweep = {
        "name": "ended",
        "trainable": "tests.trainables:report_twice",
        "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        **extra,
    }
    if "objectives" not in sweep:
        sweep |= {"metric": "score", "mode": "max"}
    return parse_spec(sweep)


@dataclass(eq=False)  # hashed by identity, as Ray's trials are
class Ended:
    trial_id: str
    last_result: dict[str, Any]
    status: str = "TERMINATED"


def ended(trial_id: str, **last_result: Any) -> Ended:
    return Ended(trial_id, last_result)


def test_one_objective_keeps_the_best_and_the_tables_rows() -> None:
    trials = [ended(f"t{i}", score=float(i)) for i in range(100)]
    kept = trials_to_keep(spec_of(), EarlyStops(), trials)
    assert {t.trial_id for t in kept} == {f"t{i}" for i in range(100 - MAX_ROWS, 100)}


def test_the_feasible_best_stays_though_the_table_ranks_it_low() -> None:
    # Trials 0..99 score i; only trials below 5 meet the constraint (size <= 4).
    trials = [ended(f"t{i}", score=float(i), size=float(i)) for i in range(100)]
    spec = spec_of(constraints=[{"metric": "size", "max": 4}])
    kept = {t.trial_id for t in trials_to_keep(spec, EarlyStops(), trials)}
    assert "t4" in kept and "t3" not in kept and "t99" in kept


def test_ties_for_the_best_all_stay_and_nan_never_outranks() -> None:
    trials = [ended("a", score=1.0), ended("b", score=1.0), ended("c", score=float("nan"))]
    trials += [ended(f"t{i}", score=0.5) for i in range(40)]
    kept = {t.trial_id for t in trials_to_keep(spec_of(), EarlyStops(), trials)}
    assert {"a", "b"} <= kept and "c" not in kept


def test_several_objectives_keep_both_fronts() -> None:
    spec = spec_of(
        objectives=[{"metric": "quality", "mode": "max"}, {"metric": "size", "mode": "min"}]
    )
    early = EarlyStops()
    early.add("s1")
    trials = [
        ended("front_a", quality=0.9, size=5.0),
        ended("front_b", quality=0.05, size=0.1),  # the smallest: on the front, not a row
        ended("s1", quality=0.95, size=0.5),  # ASHA stopped it: the stopped trials' front
    ] + [ended(f"low{i}", quality=0.1, size=9.0) for i in range(40)]
    kept = {t.trial_id for t in trials_to_keep(spec, early, trials)}
    assert {"front_a", "front_b", "s1"} <= kept
    # The table's rows rank by the first objective: the two best, then lows.
    assert sum(k.startswith("low") for k in kept) == MAX_ROWS - 2
    assert len(kept) == MAX_ROWS + 1


def test_the_live_table_counts_released_trials_and_marks_only_a_real_score_best() -> None:
    spec = spec_of()
    table = ProgressTable(
        spec, EarlyStops(), Console(file=io.StringIO()), released=lambda: {"finished": 40}
    )
    trials = [ended("nan", score=float("nan")), ended("none"), ended("good", score=0.7)]
    for trial in trials:
        trial.config = {"x": 0.5}  # type: ignore[attr-defined]
    out = Console(file=io.StringIO(), width=200)
    out.print(table.render(trials))
    lines = out.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert "43 trials (43 finished)" in lines[0]
    marked = [line for line in lines if "*" in line]
    assert len(marked) == 1 and "good" in marked[0]
    assert row_rank(float("nan"), "max") == row_rank(None, "min") == math.inf


class Watcher(tune.Callback):  # type: ignore[misc]
    """Holds every trial weakly and each one's score, and counts at the run's end the
    ended trials something still refers to."""

    def __init__(self) -> None:
        self.trials: list[weakref.ref[Any]] = []
        self.scores: dict[str, float] = {}
        self.alive_at_end = -1

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.trials.append(weakref.ref(trial))
        self.scores[trial.trial_id] = trial.last_result["score"]

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        gc.collect()
        self.alive_at_end = sum(ref() is not None for ref in self.trials)


def scored(config: dict[str, Any]) -> None:
    tune.report({"score": config["x"]})


@pytest.fixture(scope="module")
def local_ray() -> Any:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.ray
def test_released_trials_are_gone_from_the_driver_and_the_best_is_kept(
    local_ray: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "0")  # a snapshot each step
    trials = 120
    ledger = EndedTrials.shared(str(tmp_path)).start(spec_of(), EarlyStops())
    scheduler = InOrderFIFOScheduler()
    scheduler.release_ended = ledger.release_from
    watcher = Watcher()
    results = tune.Tuner(
        scored,
        param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(
            metric="score", mode="max", num_samples=trials, scheduler=scheduler,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            storage_path=str(tmp_path), verbose=0, callbacks=[watcher, ledger]
        ),
    ).fit()  # fmt: skip
    assert len(watcher.scores) == trials
    assert ledger.released + len(results) == trials
    assert ledger.released >= trials - MAX_ROWS - 10, "most ended trials were let go"
    assert watcher.alive_at_end <= len(results), "nothing else holds a released trial"
    best = results.get_best_result()
    assert best.metrics is not None
    assert best.metrics["score"] == max(watcher.scores.values())
    assert ledger.counts() == {"finished": ledger.released, "stopped (asha)": 0}


@pytest.mark.e2e
@pytest.mark.heavy  # about 45 s; test_tally counts a resumed sweep's trials by default
def test_a_sweep_interrupted_and_resumed_counts_every_trial_and_names_the_true_best(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "0")  # trials go from the first snapshot
    started = tmp_path / "started"
    sweep = {
        "name": "many",
        "trainable": "tests.trainables:quick_then_slow",
        "metric": "score",
        "mode": "max",
        "num_samples": 60,
        "searcher": {"kind": "random", "seed": 3},
        "max_concurrent_trials": 2,
        "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "config": {"count": str(tmp_path / "count"), "quick": 30, "started": str(started)},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep))
    cut = run_and_signal(tmp_path, started, signal.SIGINT, "run", "s.yaml")
    assert cut.returncode == 130, cut.stderr
    again = run_cli("resume", "many", cwd=tmp_path, timeout=400)
    assert again.returncode == 0, again.stderr
    assert "60 trials: 60 finished" in again.stdout

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("many")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=500)
    (parent,) = [r for r in runs if r.data.tags.get("tuner.role") == "sweep"]
    trial_runs = [r for r in runs if r.data.tags.get("tuner.role") == "trial"]
    assert len(trial_runs) == 60 and {r.info.status for r in trial_runs} == {"FINISHED"}
    true_best = max(trial_runs, key=lambda r: r.data.metrics["score"])
    assert parent.data.tags["tuner.best_run_id"] == true_best.info.run_id
    assert "60 trials" in parent.data.tags["mlflow.note.content"]
