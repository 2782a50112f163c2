"""`stop_when: {regret_below: ...}`: a sweep ends when Optuna's regret bound says little is
left to gain, and goes on while much is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import run_cli
from tuner.spec import SpecError, parse_spec
from tuner.tracking.tags import TAG_KILLED, TAG_PARENT, TAG_ROLE

UNIT = {"type": "float", "low": 0.0, "high": 1.0}


def sweep(name: str, trainable: str, **changes: Any) -> dict[str, Any]:
    return {
        "name": name,
        "trainable": f"tests.trainables:{trainable}",
        "metric": "score",
        "mode": "max",
        "num_samples": 60,
        "searcher": {"kind": "optuna", "sampler": "tpe", "seed": 0},
        "max_concurrent_trials": 2,
        "stop": {"training_iteration": 1},
        "params": {"x": UNIT, "y": UNIT},
        "stop_when": {"regret_below": 0.004, "min_trials": 20},
        **changes,
    }


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (
            {"searcher": {"kind": "random"}},
            "stop_when: needs searcher kind optuna (it is random): the regret bound is "
            "estimated from the Optuna study's trials",
        ),
        ({"stop_when": {"regret_below": 0}}, "stop_when.regret_below: Input should be greater"),
        ({"stop_when": {"regret_below": 0.1, "min_trials": 1}}, "stop_when.min_trials: Input"),
    ],
    ids=["random", "zero", "one-trial"],
)
def test_a_stop_rule_the_sweep_cannot_use_is_one_line(
    changes: dict[str, Any], problem: str
) -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(sweep("s", "smooth_peak", **changes), "sweep.yaml")
    assert str(raised.value).startswith(f"sweep.yaml: {problem}")


def finished(tmp_path: Path, raw: dict[str, Any]) -> tuple[str, Any, list[Any]]:
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(raw))
    result = run_cli("run", "sweep.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(raw["name"])
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=500)
    parent = next(run for run in runs if run.data.tags.get(TAG_ROLE) == "sweep")
    trials = [run for run in runs if run.data.tags.get(TAG_PARENT) == parent.info.run_id]
    return result.stdout, parent, trials


@pytest.mark.e2e
def test_a_sweep_whose_optimum_is_found_early_stops_there(tmp_path: Path) -> None:
    stdout, parent, trials = finished(tmp_path, sweep("peak", "smooth_peak"))
    assert "stopped by stop_when: the regret bound " in stdout
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["tuner.stopped_by"] == "stop_when"
    assert "fell below 0.004 after" in parent.data.tags["tuner.stop_when"]
    assert 20 <= len(trials) < 60, "it stopped between min_trials and num_samples"
    scored = [run for run in trials if "score" in run.data.metrics]
    assert max(run.data.metrics["score"] for run in scored) > 0.99
    # A trial still running when the bound fell (on a busy machine, before its one
    # result) ends KILLED and says why, rather than as a run that silently lacks a score.
    for cut_off in (run for run in trials if run not in scored):
        assert cut_off.info.status == "KILLED"
        assert cut_off.data.tags[TAG_KILLED] == "stop_when"


@pytest.mark.e2e
def test_a_sweep_with_much_left_to_gain_runs_every_trial(tmp_path: Path) -> None:
    stdout, parent, trials = finished(tmp_path, sweep("rugged", "rugged"))
    assert "stopped by stop_when" not in stdout
    assert "tuner.stopped_by" not in parent.data.tags
    assert len(trials) == 60
