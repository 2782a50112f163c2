"""A sweep's budget: when it is spent no new trial starts, the running ones stop, the
sweep ends FINISHED tagged `tuner.stopped_by=budget`, and nothing is left RUNNING."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient
from mlflow.entities import Run

from tests.conftest import run_cli
from tuner.engine.tuner_factory import _num_samples
from tuner.spec import SpecError, parse_spec
from tuner.spec.budget import duration_s


def sweep(**extra: Any) -> dict[str, Any]:
    return {
        "name": "budgeted",
        "trainable": "tests.trainables:slow_epochs",
        "metric": "score",
        "mode": "max",
        "stop": {"training_iteration": 100},
        "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        **extra,
    }


@pytest.mark.parametrize(("text", "seconds"), [("2h", 7200), ("1h30m", 5400), ("45s", 45)])
def test_durations(text: str, seconds: float) -> None:
    assert duration_s(text) == seconds


@pytest.mark.parametrize(
    ("budget", "key"),
    [
        ({"max_wall": "2 hours"}, "budget.max_wall"),
        ({"max_wall": "0s"}, "budget.max_wall"),
        ({"max_usd": 50}, "budget.max_usd"),  # no prices to count dollars with
        ({"max_trials": 0}, "budget.max_trials"),
        ({"max_gpu_hours": -1}, "budget.max_gpu_hours"),
        ({"max_dollars": 5}, "budget.max_dollars"),
    ],
)
def test_a_bad_budget_is_one_line(budget: dict[str, Any], key: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(sweep(budget=budget), "s.yaml")
    assert caught.value.key == key


def test_optuna_runs_at_most_max_trials() -> None:
    spec = parse_spec(sweep(num_samples=10, searcher={"kind": "optuna"}, budget={"max_trials": 3}))
    assert _num_samples(spec) == 3


def sweep_runs(tmp_path: Path) -> tuple[Run, list[Run]]:
    """The sweep's parent run and its trials' runs, as MLflow holds them now."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("budgeted")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("tuner.role") == "sweep"]
    return parent, [r for r in runs if r.data.tags.get("tuner.role") == "trial"]


def run_sweep(tmp_path: Path, **extra: Any) -> tuple[str, Run, list[Run]]:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep(**extra)))
    done = run_cli("run", "s.yaml", cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    parent, trials = sweep_runs(tmp_path)
    assert parent.info.status == "FINISHED"
    assert "RUNNING" not in {r.info.status for r in trials}
    assert parent.data.tags["tuner.stopped_by"] == "budget"
    return done.stdout, parent, trials


@pytest.mark.e2e
def test_max_trials_cuts_a_grid_exactly(tmp_path: Path) -> None:
    params = {
        "x": {"type": "grid", "values": [0.1, 0.2, 0.3]},
        "y": {"type": "grid", "values": [1, 2]},
    }
    stdout, parent, trials = run_sweep(
        tmp_path,
        searcher={"kind": "grid"},
        params=params,
        config={"epochs": 2},
        budget={"max_trials": 4},
    )
    assert len(trials) == 4
    assert parent.data.tags["tuner.budget_reached"] == "max_trials 4"
    assert "stopped by its budget: max_trials 4" in stdout


@pytest.mark.e2e
def test_max_wall_ends_the_sweep_on_time(tmp_path: Path) -> None:
    # Each trial alone would take 60 s (its stop allows all 300 epochs); the sweep gets
    # 30 from the moment its trials may start. (8 s, then 20 s, were too few on a loaded
    # CI machine: the wall clock counts Ray's worker start-up, and a sweep whose budget
    # ends before any result exits 1.)
    stdout, parent, trials = run_sweep(
        tmp_path,
        num_samples=4,
        config={"epochs": 300},
        stop={"training_iteration": 300},
        budget={"max_wall": "30s"},
    )
    assert parent.data.tags["tuner.budget_reached"] == "max_wall 30s"
    assert "stopped by its budget: max_wall 30s" in stdout
    longest = max((r.info.end_time - r.info.start_time) / 1000 for r in trials)
    assert longest < 36, "a trial ran on past the budget"
    assert len(trials) <= 4 and all(r.info.status in ("FINISHED", "KILLED") for r in trials)


@pytest.mark.e2e
def test_max_usd_stops_once_the_trials_cost_it(tmp_path: Path) -> None:
    # Ten cents per CPU-second: 2 one-CPU trials at a time spend $0.2 a second, so the $1
    # budget is spent 5 to 10 s after the first trial starts, well after its first
    # result (a sweep whose budget ends before any result exits 1; at $1 a CPU-second
    # and a $3 budget a loaded machine had 1.5 to 3 s) and before any 20 s trial ends.
    stdout, parent, trials = run_sweep(
        tmp_path,
        num_samples=4,
        cost={"usd_per_cpu_hour": 360},
        budget={"max_usd": 1},
    )
    assert parent.data.tags["tuner.budget_reached"].startswith("max_usd $1 ($")
    assert "stopped by its budget: max_usd $1" in stdout
    # Ray checks the budget between steps: a little over it, never a whole trial ($2) more.
    assert 1 <= parent.data.metrics["cost_usd"] < 3
    assert sum(r.data.metrics["cost_usd"] for r in trials) == pytest.approx(
        parent.data.metrics["cost_usd"]
    )


# heavy: the slowest test of the default run (108 s), a sweep run, stopped by its budget
# and resumed; CI's 90 minutes are close. The budget's stops run in the default run.
@pytest.mark.heavy
@pytest.mark.e2e
def test_resume_with_a_new_budget_goes_on_where_the_old_one_stopped(tmp_path: Path) -> None:
    _, first, trials = run_sweep(
        tmp_path, num_samples=6, config={"epochs": 100}, budget={"max_wall": "30s"}
    )
    assert first.data.tags["tuner.budget_reached"] == "max_wall 30s"
    assert len(trials) < 6  # 20 s trials, 2 at a time: the 5th cannot start before 40 s
    # A resume may find a better trial, and MLflow never changes a logged param.
    assert "best.x" in first.data.tags and "best.x" not in first.data.params

    again = run_cli("resume", "budgeted", cwd=tmp_path, timeout=120)
    assert again.returncode == 1
    assert "stopped at its budget (max_wall 30s)" in again.stderr and "--budget" in again.stderr
    for bad, says in (("{max_trials: 9}", "budget.max_trials"), ("[1]", "--budget")):
        refused = run_cli("resume", "budgeted", "--budget", bad, cwd=tmp_path, timeout=120)
        assert refused.returncode == 2 and says in refused.stderr, refused.stderr

    extended = run_cli("resume", "budgeted", "--budget", "{max_wall: 5m}", cwd=tmp_path)
    assert extended.returncode == 0, extended.stderr
    parent, trials = sweep_runs(tmp_path)
    assert parent.info.status == "FINISHED" and "tuner.stopped_by" not in parent.data.tags
    assert parent.data.tags["tuner.resumes"] == "1"
    assert len(trials) == 6 and "RUNNING" not in {r.info.status for r in trials}
    (best,) = [r for r in trials if r.info.run_id == parent.data.tags["tuner.best_run_id"]]
    assert parent.data.params["best.x"] == best.data.params["x"]
    assert "best.x" not in parent.data.tags


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{max_wall: 2001-13-45}", "--budget: not YAML: '2001-13-45' is not a valid timestamp"),
        ("[" * 3000, "--budget: nested too deeply to be a mapping of limits"),
        ("{max_usd: 010}", "--budget: not YAML: YAML 1.1 reads 010 as octal, 8"),
    ],
)
def test_a_budget_yaml_cannot_read_is_one_line(
    text: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--budget` was read with PyYAML's own loader: a date that is none or deep nesting
    was a traceback of up to 3,000 lines."""
    import typer

    from tuner.cli.common import budget_changes

    with pytest.raises(typer.Exit) as exited:
        budget_changes(text)
    assert exited.value.exit_code == 2
    assert capsys.readouterr().err.strip().startswith(f"error: {says}")
