"""Several objectives (`objectives:`), their Pareto front, multi-objective ASHA, and
constraints (`constraints:`)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import run_cli
from tuner.engine.trainables import check_trainable
from tuner.search.builders import build_search_algorithm
from tuner.search.early_stops import EarlyStops
from tuner.search.optuna_search import SAMPLERS
from tuner.search.pareto import (
    crowding_distances,
    dominates,
    nondominated_ranks,
    pareto_front,
    promoted_by_rank,
)
from tuner.search.promotion import promotion_cutoff
from tuner.spec import SpecError, parse_spec
from tuner.spec.objectives import feasible, violations
from tuner.tracking.tags import TAG_PARENT, TAG_PARETO, TAG_PARETO_RUNS, TAG_PARETO_SIZE, TAG_ROLE

OBJECTIVES = [{"metric": "quality", "mode": "max"}, {"metric": "size", "mode": "min"}]


def sweep(**extra: Any) -> dict[str, Any]:
    return {
        "name": "two",
        "trainable": "tests.trainables:two_objectives",
        "objectives": OBJECTIVES,
        "num_samples": 12,
        "searcher": {"kind": "optuna", "sampler": "tpe", "seed": 0},
        "params": {
            "x": {"type": "float", "low": 0.0, "high": 1.0},
            "y": {"type": "int", "low": 1, "high": 5},
        },
        "config": {"epochs": 3},
        **extra,
    }


# --- the ranking, as pure functions ---------------------------------------------------


def test_nondominated_sorting_and_crowding_by_hand() -> None:
    # (accuracy, -params): higher is better in both.
    points = [(0.9, -100.0), (0.8, -10.0), (0.85, -50.0), (0.7, -50.0), (0.9, -200.0)]
    assert dominates(points[0], points[4]) and not dominates(points[0], points[1])
    assert nondominated_ranks(points) == [0, 0, 0, 1, 1]
    assert pareto_front(points) == [0, 1, 2]
    crowding = crowding_distances(points, [0, 1, 2])
    assert crowding[0] == crowding[1] == float("inf")
    # The middle point: the gaps around it, over each objective's span.
    assert crowding[2] == pytest.approx((0.9 - 0.8) / 0.1 + (-10 - -100) / 90)


def test_the_fast_sort_agrees_with_the_definition() -> None:
    """Fronts peeled by the definition (a front: the points nothing left dominates),
    against the dominance-matrix sort, on random points with many ties."""
    rng = random.Random(1)
    for _ in range(300):
        k = rng.choice([1, 2, 3])
        points = [
            tuple(float(rng.randint(0, 4)) for _ in range(k)) for _ in range(rng.randint(1, 25))
        ]
        expected, left, rank = [-1] * len(points), set(range(len(points))), 0
        while left:
            front = {i for i in left if not any(dominates(points[j], points[i]) for j in left)}
            for i in front:
                expected[i] = rank
            left, rank = left - front, rank + 1
        assert nondominated_ranks(points) == expected


def test_with_one_objective_the_rung_rule_is_asha_s() -> None:
    """Multi-objective ASHA on one objective promotes exactly the trials the top
    n // reduction_factor rule does, ties included."""
    rng = random.Random(0)
    for _ in range(500):
        earlier = [float(rng.randint(0, 6)) for _ in range(rng.randint(0, 9))]
        new = float(rng.randint(0, 6))
        rf = rng.choice([2, 3, 4])
        cutoff = promotion_cutoff(earlier, rf)
        expected = cutoff is None or new >= cutoff
        assert promoted_by_rank((new,), [(v,) for v in earlier], rf) == expected


def test_a_rung_ranks_by_front_then_crowding() -> None:
    earlier = [(0.9, -100.0), (0.8, -10.0), (0.5, -500.0)]
    # 4 at the rung, reduction factor 2: two go on. The new point is dominated by none
    # but lies between two front members: the front's ends are ahead of it.
    assert not promoted_by_rank((0.85, -50.0), earlier, 2)
    # An end of the front goes on.
    assert promoted_by_rank((0.95, -150.0), earlier, 2)


def test_constraint_violations_follow_optuna_s_sign() -> None:
    spec = parse_spec(
        sweep(constraints=[{"metric": "latency", "max": 2.0}, {"metric": "size", "min": 2}])
    )
    assert violations(spec.constraints, {"latency": 1.5, "size": 3}) == [-0.5, -1.0]
    assert violations(spec.constraints, {"latency": 2.5, "size": 1}) == [0.5, 1.0]
    assert not feasible(spec.constraints, {"size": 3})  # latency never reported
    assert feasible(spec.constraints, {"latency": 2.0, "size": 2})


# --- the sweep file's rules -----------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        (
            {"metric": "quality", "mode": "max"},
            "metric",
            "give objectives or metric and mode, not both (objectives lists them)",
        ),
        (
            {"searcher": {"kind": "optuna", "sampler": "cmaes"}},
            "searcher.sampler",
            "cmaes takes neither several objectives nor constraints (several objectives "
            "given); use tpe, gp, nsga2, nsga3 or random",
        ),
        (
            {"objectives": [OBJECTIVES[0], OBJECTIVES[0]]},
            "objectives[1].metric",
            "'quality' is listed twice",
        ),
        ({"objectives": []}, "objectives", "lists none: give at least one, or metric and mode"),
        ({"constraints": [{"metric": "latency"}]}, "constraints[0]", "needs max, min or both"),
        (
            {"constraints": [{"metric": "time_total_s", "max": 5}]},
            "constraints[0].metric",
            "'time_total_s' is a key Ray Tune or tuner fills in, not a metric the trainable "
            "reports; name the metric it reports",
        ),
    ],
)
def test_objectives_and_constraints_the_sweep_cannot_use_are_one_line(
    extra: dict[str, Any], key: str, problem: str
) -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(sweep(**extra), "sweep.yaml")
    assert str(raised.value) == f"sweep.yaml: {key}: {problem}"


def test_a_built_in_trainer_must_report_each_objective() -> None:
    spec = parse_spec(
        sweep(
            trainable="builtin:classifier",
            params={"lr": {"type": "float", "low": 1e-3, "high": 0.1}},
            config={},
            objectives=[
                {"metric": "val_accuracy", "mode": "max"},
                {"metric": "flops", "mode": "min"},
            ],
        )
    )
    with pytest.raises(SpecError) as raised:
        check_trainable(spec)
    assert raised.value.key == "objectives[1].metric"
    assert "does not report 'flops'" in raised.value.problem
    assert "num_params, inference_ms" in raised.value.problem


def test_the_file_round_trips_with_objectives() -> None:
    spec = parse_spec(sweep(constraints=[{"metric": "latency", "max": 2.0}]))
    assert (spec.metric, spec.mode, spec.is_multi_objective) == ("quality", "max", True)
    again = parse_spec(yaml.safe_load(spec.as_yaml()))
    assert again == spec


def test_optuna_learns_each_trial_s_constraint_violations() -> None:
    spec = parse_spec(sweep(constraints=[{"metric": "latency", "max": 2.0}]))
    searcher: Any = build_search_algorithm(spec, EarlyStops())
    config = searcher.suggest("t1")
    searcher.on_trial_complete(
        "t1", {"quality": 0.9, "size": 2, "latency": 10 * config["x"], "training_iteration": 3}
    )
    (trial,) = searcher._ot_study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.values == [0.9, 2]
    # Optuna's samplers and its front read the trial's constraints.
    assert trial.constraints == {"latency <= 2": pytest.approx(10 * config["x"] - 2.0)}


# --- end to end through the CLI --------------------------------------------------------


def runs_of(tracking_uri: str, name: str) -> tuple[Any, list[Any]]:
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parent = next(run for run in runs if run.data.tags.get(TAG_ROLE) == "sweep")
    return parent, [run for run in runs if run.data.tags.get(TAG_PARENT) == parent.info.run_id]


@pytest.mark.e2e
@pytest.mark.parametrize("scheduler", ["fifo", "asha"])
def test_a_two_objective_sweep_records_its_front(tmp_path: Path, scheduler: str) -> None:
    schedulers = {
        "fifo": {"kind": "fifo"},
        "asha": {"kind": "asha", "max_t": 3, "grace_period": 1, "reduction_factor": 2},
    }
    spec = sweep(
        scheduler=schedulers[scheduler],
        constraints=[{"metric": "latency", "max": 6.0}],
        max_concurrent_trials=2,
    )
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(spec))
    result = run_cli("run", "two.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    parent, trials = runs_of(f"sqlite:///{tmp_path / 'mlflow.db'}", "two")
    assert len(trials) == 12

    def point(run: Any) -> tuple[float, float]:
        return (run.data.metrics["quality"], -run.data.metrics["size"])

    trained = [
        run
        for run in trials
        if run.info.status == "FINISHED" and run.data.metrics["latency"] <= 6.0
    ]
    expected = {trained[i].info.run_id for i in pareto_front([point(r) for r in trained])}
    front = {run.info.run_id for run in trials if run.data.tags.get(TAG_PARETO) == "true"}
    assert front == expected and front
    assert set(parent.data.tags[TAG_PARETO_RUNS].split(",")) == front
    assert parent.data.tags[TAG_PARETO_SIZE] == str(len(front))
    # No trial of the front is dominated by any feasible trial that trained to its end.
    for run in trials:
        if run.info.run_id in front:
            assert not any(dominates(point(other), point(run)) for other in trained)
            assert run.data.metrics["latency"] <= 6.0

    shown = run_cli("best", "two", cwd=tmp_path, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert f"sweep two: Pareto front of {len(front)} trials, quality (max), size (min)" in (
        shown.stdout
    )
    listed = [line for line in shown.stdout.splitlines() if line.startswith("  trial ")]
    trial_of = {run.info.run_id: run.data.tags["tuner.trial_id"] for run in trials}
    assert {line.split()[1].rstrip(":") for line in listed} == {trial_of[r] for r in front}
    as_json = json.loads(run_cli("best", "two", "--json", cwd=tmp_path, timeout=120).stdout)
    assert {trial["run_id"] for trial in as_json["front"]} == front

    if scheduler == "fifo":  # the report draws the front (one sweep is enough)
        report = run_cli("report", "two", "--out", "report", cwd=tmp_path, timeout=300)
        assert report.returncode == 0, report.stderr[-3000:]
        picture = (tmp_path / "report" / "pareto_front.png").read_bytes()
        assert picture.startswith(b"\x89PNG") and len(picture) > 10_000
        assert "pareto_front" in (tmp_path / "report" / "report.html").read_text()


@pytest.mark.e2e
def test_a_front_of_trials_asha_stopped_says_so(tmp_path: Path) -> None:
    """Every trial ASHA let go on fails: no trial trained to its end, and the front is of
    one-epoch values. It was printed as a front of trained models."""
    spec = sweep(
        scheduler={"kind": "asha", "max_t": 3, "grace_period": 1, "reduction_factor": 2},
        num_samples=6,
        max_concurrent_trials=1,  # in turn: ASHA stops the later ones at epoch 1
        config={"epochs": 3, "fail_after_epoch": 1},
        fail_fast_after=None,  # those that go on all fail alike
    )
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(spec))
    result = run_cli("run", "two.yaml", cwd=tmp_path)
    _, trials = runs_of(f"sqlite:///{tmp_path / 'mlflow.db'}", "two")
    tags = [run.data.tags for run in trials]
    stopped = {t["tuner.trial_id"] for t in tags if "tuner.stopped_early" in t}
    front = {t["tuner.trial_id"] for t in tags if t.get(TAG_PARETO)}
    assert stopped and front and front <= stopped, result.stdout
    shown = run_cli("best", "two", cwd=tmp_path, timeout=120)
    for output in (result.stdout, shown.stdout):
        listed = [line for line in output.splitlines() if line.startswith("  trial ")]
        assert len(listed) == len(front), output
        assert all(line.endswith("  (stopped early by ASHA)") for line in listed), output


@pytest.mark.e2e
def test_a_trial_that_breaks_a_constraint_is_never_best(tmp_path: Path) -> None:
    spec = {
        **sweep(searcher={"kind": "grid"}, num_samples=1, max_concurrent_trials=2),
        "objectives": None,
        "metric": "quality",
        "mode": "max",
        # x = 0.3 scores best but its latency (3.0) breaks the constraint.
        "params": {
            "x": {"type": "grid", "values": [0.1, 0.3, 0.9]},
            "y": {"type": "grid", "values": [1]},
        },
        "constraints": [{"metric": "latency", "max": 2.0}],
    }
    del spec["objectives"]
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(spec))
    result = run_cli("run", "one.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "  x = 0.1" in result.stdout
    shown = run_cli("best", "two", cwd=tmp_path, timeout=120)
    assert "x = 0.1" in shown.stdout


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_survives_ray_tunes_pickling_and_samples_after(name: str) -> None:
    """Ray Tune pickles the searcher, sampler and all, when the Tuner is made and at each
    snapshot: Optuna 5.1's NSGA-II and NSGA-III kept a lock that does not pickle, and
    every `sampler: nsga2` sweep ended as it started."""
    from ray import cloudpickle

    sampler = cloudpickle.loads(cloudpickle.dumps(SAMPLERS[name](0)))
    study = optuna.create_study(sampler=sampler)  # one objective: CMA-ES takes no more
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    again = cloudpickle.loads(cloudpickle.dumps(sampler))  # a snapshot after trials too
    assert len(study.trials) == 3 and type(again) is type(sampler)
