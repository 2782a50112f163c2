"""Configurations tried first: `enqueue` in the sweep file, `warm_start` from an earlier sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import run_cli
from tuner.search.builders import build_search_algorithm
from tuner.search.conditional import ConditionalVariants
from tuner.search.early_stops import EarlyStops
from tuner.search.warm import StartingPoints
from tuner.spec import SpecError, parse_spec
from tuner.tracking.tags import TAG_PARENT, TAG_ROLE

X = {"type": "float", "low": 0.0, "high": 1.0}
PARAMS: dict[str, Any] = {
    "x": X,
    "y": {"type": "int", "low": 1, "high": 9, "step": 2},
    "kind": {"type": "categorical", "choices": ["a", "b"]},
    "z": {**X, "when": {"kind": ["a"]}},
}


def sweep(name: str = "warm", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "trainable": "tests.trainables:one_param_matters",
        "metric": "score",
        "mode": "max",
        "num_samples": 4,
        "searcher": {"kind": "optuna", "seed": 0},
        "params": PARAMS,
        "config": {"epochs": 2},
        **extra,
    }


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        ({"enqueue": [{"w": 1}]}, "enqueue[0].w", "names no param (params: x, y, kind, z)"),
        ({"enqueue": [{"x": 1.5}]}, "enqueue[0].x", "1.5 is outside [0, 1]"),
        ({"enqueue": [{"y": 4}]}, "enqueue[0].y", "4 is not low + a multiple of step (2)"),
        ({"enqueue": [{"y": 3.5}]}, "enqueue[0].y", "3.5 is not a whole number"),
        ({"enqueue": [{"x": True}]}, "enqueue[0].x", "True is not a number"),
        ({"enqueue": [{"kind": "c"}]}, "enqueue[0].kind", "'c' is not among its choices (a, b)"),
        (
            {"enqueue": [{"kind": "b", "z": 0.5}]},
            "enqueue[0].z",
            "its condition (kind in [a]) does not hold in this point; leave it out",
        ),
        ({"enqueue": [{}]}, "enqueue[0]", "is empty: name at least one param"),
        (
            {"enqueue": [{"x": 0.1}] * 5},
            "enqueue",
            "lists 5 points but num_samples is 4; each point is one of the samples",
        ),
        (
            {"warm_start": {"from": "earlier"}},
            "warm_start",
            "says neither top: N (try its best first) nor learn: true",
        ),
        (
            {"warm_start": {"from": "earlier", "learn": True}, "searcher": {"kind": "random"}},
            "warm_start.learn",
            "needs searcher kind optuna: random search learns nothing",
        ),
        (
            {
                "enqueue": [{"kind": "a"}],
                "searcher": {"kind": "grid"},
                "params": {"kind": PARAMS["kind"]},
            },
            "enqueue",
            "the grid searcher tries every point already; use kind random or optuna",
        ),
        (
            {
                "enqueue": [{"batch": 32}],
                "searcher": {"kind": "random"},
                "params": {**PARAMS, "batch": {"type": "grid", "values": [32, 64]}},
            },
            "enqueue[0].batch",
            "is a grid axis, which tries every value already; leave it out",
        ),
    ],
)
def test_a_point_the_sweep_cannot_try_is_one_line(
    extra: dict[str, Any], key: str, problem: str
) -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(sweep(**extra), "sweep.yaml")
    assert str(raised.value) == f"sweep.yaml: {key}: {problem}"


def test_the_sweep_file_keeps_warm_start_as_written() -> None:
    spec = parse_spec(sweep(warm_start={"from": "earlier", "top": 2}, enqueue=[{"x": 0.5}]))
    assert yaml.safe_load(spec.as_yaml())["warm_start"] == {"from": "earlier", "top": 2}


POINTS = [{"x": 0.25, "kind": "a", "z": 0.75}, {"y": 7, "kind": "b"}]


def test_optuna_tries_the_points_first_and_samples_the_rest() -> None:
    spec = parse_spec(sweep())
    history = [
        optuna.trial.create_trial(
            value=0.5,
            params={"x": 0.5, "kind": "b"},
            distributions={
                "x": optuna.distributions.FloatDistribution(0.0, 1.0),
                "kind": optuna.distributions.CategoricalDistribution(["a", "b"]),
            },
        )
    ]
    searcher: Any = build_search_algorithm(spec, EarlyStops(), StartingPoints(POINTS, history))
    first, second, third = (searcher.suggest(f"t{i}") for i in range(3))
    assert first.items() >= POINTS[0].items() and set(first) == {"x", "y", "kind", "z"}
    assert second.items() >= POINTS[1].items() and set(second) == {"x", "y", "kind"}
    assert "kind" in third
    assert len(searcher._ot_study.trials) == 4  # the history, then three asked trials


@pytest.mark.parametrize("searcher", [{"kind": "random", "seed": 1}])
@pytest.mark.parametrize("conditional", [True, False])
def test_random_search_tries_the_points_first(searcher: dict[str, Any], conditional: bool) -> None:
    params = PARAMS if conditional else {k: v for k, v in PARAMS.items() if k != "z"}
    points = POINTS if conditional else [{"x": 0.25, "kind": "a"}, {"y": 7, "kind": "b"}]
    spec = parse_spec(sweep(searcher=searcher, params=params))
    algorithm: Any = build_search_algorithm(spec, EarlyStops(), StartingPoints(points))
    if conditional:
        assert isinstance(algorithm, ConditionalVariants)
        configs = [algorithm.suggest(str(i)) for i in range(4)]
    else:
        assert algorithm._points_to_evaluate == points  # Ray's generator takes them as given
        return
    for config, point in zip(configs, points, strict=False):
        assert isinstance(config, dict), config  # not FINISHED, nor None
        assert config.items() >= point.items()
    second = configs[1]
    assert isinstance(second, dict), second
    assert "z" not in second


# --- end to end through the CLI --------------------------------------------------------


def trials_in_order(tracking_uri: str, name: str) -> list[Any]:
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    parents = [run for run in runs if run.data.tags.get(TAG_ROLE) == "sweep"]
    latest = max(parents, key=lambda run: run.info.start_time).info.run_id
    return [run for run in runs if run.data.tags.get(TAG_PARENT) == latest]


def params_of(run: Any) -> dict[str, Any]:
    return {name: yaml.safe_load(value) for name, value in run.data.params.items()}


@pytest.mark.e2e
def test_a_warm_started_sweep_runs_the_earlier_best_first(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    earlier = {
        **sweep("earlier", num_samples=6, searcher={"kind": "random", "seed": 3}),
        # w is not in the later sweep's space: it is left out of the warm start.
        "params": {**PARAMS, "w": {"type": "categorical", "choices": [1, 2]}},
        "max_concurrent_trials": 2,
    }
    (tmp_path / "earlier.yaml").write_text(yaml.safe_dump(earlier))
    assert run_cli("run", "earlier.yaml", cwd=tmp_path).returncode == 0
    ranked = sorted(trials_in_order(uri, "earlier"), key=lambda run: -run.data.metrics["score"])
    best_two = [{k: v for k, v in params_of(run).items() if k != "w"} for run in ranked[:2]]

    later = sweep(
        "later",
        num_samples=5,
        enqueue=[{"x": 0.3, "kind": "b"}],
        warm_start={"from": "earlier", "top": 2, "learn": True},
        max_concurrent_trials=1,
    )
    (tmp_path / "later.yaml").write_text(yaml.safe_dump(later))
    result = run_cli("run", "later.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warm start: the 2 best configurations of sweep 'earlier' (score " in result.stdout
    assert "warm start: Optuna learns from 6 trials of sweep 'earlier'" in result.stdout
    assert (
        "warm start: w dropped from 6 trials of sweep 'earlier': not in this sweep's space, "
        "or not a value it can take"
    ) in result.stdout
    runs = trials_in_order(uri, "later")
    assert len(runs) == 5
    first = params_of(runs[0])
    assert first["x"] == 0.3 and first["kind"] == "b" and "z" not in first
    for run, expected in zip(runs[1:3], best_two, strict=True):
        assert params_of(run) == expected

    # Learning from a sweep that optimized another metric would mislead the searcher.
    other = {**later, "name": "other", "metric": "loss", "mode": "min"}
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    refused = run_cli("run", "other.yaml", cwd=tmp_path, timeout=120)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "error: other.yaml: warm_start.learn: sweep 'earlier' optimized score (max), this sweep "
        "loss (min): its values would mislead the searcher"
    )


@pytest.mark.e2e
def test_a_warm_start_from_no_sweep_is_one_line_before_ray_starts(tmp_path: Path) -> None:
    warm = {"from": "nowhere", "top": 2}
    (tmp_path / "later.yaml").write_text(yaml.safe_dump(sweep("later", warm_start=warm)))
    result = run_cli("run", "later.yaml", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: later.yaml: warm_start.from: no sweep named 'nowhere' in sqlite:///mlflow.db"
    )
    assert not (tmp_path / "tuner_runs").exists()


def test_a_point_reaches_its_trials_as_its_params_give_values(tmp_path: Path) -> None:
    """`{y: 3.0}` for an int param passed as 3.0, a float, to the trial: user code's
    `range(config["y"])` failed, and MLflow showed `3.0`."""
    from tuner.engine.warm_start import starting_points

    params = {**PARAMS, "kind": {"type": "categorical", "choices": ["a", 1]}}
    spec = parse_spec(sweep(params=params, enqueue=[{"y": 3.0, "kind": 1.0}, {"y": 5}]))
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    points = starting_points(spec, tracking_uri, print).points
    assert points == [{"y": 3, "kind": 1}, {"y": 5}]
    assert [type(point["y"]) for point in points] == [int, int]
    assert type(points[0]["kind"]) is int
