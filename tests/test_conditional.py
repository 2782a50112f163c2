"""Conditional params (`when:`): sampled only when their condition holds, absent otherwise."""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import run_cli
from tuner.search.builders import build_search_algorithm
from tuner.search.conditional import ConditionalSpace, ConditionalVariants
from tuner.search.early_stops import EarlyStops
from tuner.search.optuna_search import PruningOptunaSearch
from tuner.spec import SpecError, SweepSpec, parse_spec
from tuner.tracking.tags import TAG_PARENT, TAG_ROLE

OPTIMIZER = {"type": "categorical", "choices": ["sgd", "adam", "rmsprop"]}
# momentum for sgd and rmsprop, nesterov only for sgd with momentum, beta1 for adam.
CHAINED: dict[str, Any] = {
    "optimizer": OPTIMIZER,
    "lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
    "momentum": {
        "type": "categorical",
        "choices": [0.0, 0.9],
        "when": {"optimizer": ["sgd", "rmsprop"]},
    },
    "nesterov": {
        "type": "categorical",
        "choices": [True, False],
        "when": {"momentum": [0.9], "optimizer": ["sgd"]},
    },
    "beta1": {"type": "float", "low": 0.8, "high": 0.99, "when": {"optimizer": ["adam"]}},
}


def sweep(params: dict[str, Any], searcher: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "conditional",
        "trainable": "tests.trainables:conditional_score",
        "metric": "score",
        "mode": "max",
        "searcher": searcher,
        "params": params,
        **extra,
    }


def should_be_present(config: dict[str, Any]) -> dict[str, bool]:
    """The rule of CHAINED, written out by hand."""
    optimizer = config["optimizer"]
    return {
        "momentum": optimizer in ("sgd", "rmsprop"),
        "nesterov": optimizer == "sgd" and config.get("momentum") == 0.9,
        "beta1": optimizer == "adam",
    }


def assert_honours_conditions(config: dict[str, Any], searched: Any = CHAINED) -> None:
    for name, present in should_be_present(config).items():
        if name in searched:
            assert (name in config) == present, (name, config)


def config_of(suggested: dict[str, Any] | str | None) -> dict[str, Any]:
    """A searcher's suggestion that must be a config: not its FINISHED string, nor the
    None of a searcher that is not ready."""
    assert isinstance(suggested, dict), f"the searcher suggested {suggested!r}, not a config"
    return suggested


# --- the sweep file's rules -----------------------------------------------------------

RANGE = {"type": "float", "low": 0.1, "high": 0.9}


@pytest.mark.parametrize(
    ("params", "searcher", "key", "problem"),
    [
        pytest.param(
            {"optimizer": OPTIMIZER, "momentum": {**RANGE, "when": {"optimiser": ["sgd"]}}},
            {"kind": "random"},
            "params.momentum.when.optimiser",
            "names no param (params: optimizer, momentum)",
            id="unknown-param",
        ),
        pytest.param(
            {"optimizer": OPTIMIZER, "momentum": {**RANGE, "when": {"optimizer": ["adamw"]}}},
            {"kind": "random"},
            "params.momentum.when.optimizer",
            "'adamw' is not among optimizer's choices ('sgd', 'adam', 'rmsprop')",
            id="value-not-a-choice",
        ),
        pytest.param(
            {
                "flag": {"type": "categorical", "choices": [True, False]},
                "x": {**RANGE, "when": {"flag": [1]}},
            },
            {"kind": "random"},
            "params.x.when.flag",
            "1 is not among flag's choices (true, false)",
            id="number-is-not-true",
        ),
        pytest.param(
            {"lr": RANGE, "momentum": {**RANGE, "when": {"lr": [0.5]}}},
            {"kind": "random"},
            "params.momentum.when.lr",
            "lr is a float range; a condition needs a param with listed values "
            "(type: categorical or grid)",
            id="continuous-parent",
        ),
        pytest.param(
            {
                "a": {"type": "categorical", "choices": [1, 2], "when": {"c": [1]}},
                "b": {"type": "categorical", "choices": [1, 2], "when": {"a": [1]}},
                "c": {"type": "categorical", "choices": [1, 2], "when": {"b": [2]}},
            },
            {"kind": "optuna"},
            "params.a.when",
            "conditions form a cycle: a -> c -> b -> a",
            id="cycle",
        ),
        pytest.param(
            {
                "optimizer": OPTIMIZER,
                "batch": {"type": "grid", "values": [32, 64], "when": {"optimizer": ["sgd"]}},
            },
            {"kind": "random"},
            "params.batch.when.optimizer",
            "a grid axis may depend only on grid axes; optimizer is categorical, "
            "sampled afresh for each trial",
            id="grid-axis-on-sampled-param",
        ),
    ],
)
def test_a_condition_the_sweep_cannot_honour_is_one_line(
    params: dict[str, Any], searcher: dict[str, Any], key: str, problem: str
) -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(sweep(params, searcher), "sweep.yaml")
    assert str(raised.value) == f"sweep.yaml: {key}: {problem}"


def test_validate_refuses_a_bad_condition_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    params = {"optimizer": OPTIMIZER, "momentum": {**RANGE, "when": {"optimizer": ["adamw"]}}}
    bad.write_text(yaml.safe_dump(sweep(params, {"kind": "optuna"})))
    result = run_cli("validate", str(bad), cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {bad}: params.momentum.when.optimizer: "
        "'adamw' is not among optimizer's choices ('sgd', 'adam', 'rmsprop')"
    )


def test_a_grid_counts_only_the_combinations_whose_conditions_hold() -> None:
    params = {name: p for name, p in CHAINED.items() if name not in ("lr", "beta1")}
    spec = parse_spec(sweep(params, {"kind": "grid"}, num_samples=2))
    # sgd: momentum 0.0 (1) or 0.9 x nesterov (2); rmsprop: momentum (2); adam: 1.
    assert spec.grid_size() == 6
    assert spec.expected_trials() == 12


def test_a_huge_conditional_grid_is_refused_without_enumerating_it() -> None:
    axes: dict[str, dict[str, Any]] = {
        f"a{i}": {"type": "categorical", "choices": list(range(10))} for i in range(12)
    }
    axes["a11"]["when"] = {"a0": [0]}
    with pytest.raises(SpecError, match="at most 100,000"):
        parse_spec(sweep(axes, {"kind": "grid"}))


# --- the searchers --------------------------------------------------------------------


def test_optuna_samples_a_param_only_when_its_condition_holds() -> None:
    spec = parse_spec(sweep(CHAINED, {"kind": "optuna"}))
    space = ConditionalSpace(spec.params)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0), direction="maximize")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        space(trial)
        lr: float = trial.params.get("lr", 0.0)
        return lr

    study.optimize(objective, n_trials=60)
    seen = set()
    for trial in study.trials:
        assert_honours_conditions(trial.params)
        seen.add((trial.params["optimizer"], *sorted(trial.params)))
    # Every branch was reached: sgd with and without nesterov, rmsprop, adam.
    assert len(seen) == 4


def test_ray_gets_a_define_by_run_space_that_survives_its_snapshot(tmp_path: Path) -> None:
    spec = parse_spec(sweep(CHAINED, {"kind": "optuna", "seed": 3}, num_samples=8))
    searcher = build_search_algorithm(spec, EarlyStops())
    assert isinstance(searcher, PruningOptunaSearch)
    configs = [searcher.suggest(f"t{i}") for i in range(4)]
    searcher.save(str(tmp_path / "searcher.pkl"))
    restored = build_search_algorithm(spec, EarlyStops())
    assert isinstance(restored, PruningOptunaSearch)
    restored.restore(str(tmp_path / "searcher.pkl"))
    configs += [restored.suggest(f"t{i}") for i in range(4, 8)]
    for config in configs:
        assert_honours_conditions(config_of(config))


def valid_grid(spec: SweepSpec) -> list[dict[str, Any]]:
    """The grid's valid points, found the slow way: every product, absent params
    dropped, duplicates merged."""
    names = list(spec.params)
    options = [spec.params[name].options for name in names]  # type: ignore[union-attr]
    points: list[dict[str, Any]] = []
    for values in itertools.product(*options):
        point = dict(zip(names, values, strict=True))
        present = should_be_present(point)
        kept = {name: value for name, value in point.items() if present.get(name, True)}
        if kept not in points:
            points.append(kept)
    return points


def test_grid_search_tries_each_valid_combination_once_per_sample(tmp_path: Path) -> None:
    params = {name: p for name, p in CHAINED.items() if name not in ("lr", "beta1")}
    spec = parse_spec(sweep(params, {"kind": "grid"}, num_samples=2))
    searcher = ConditionalVariants(spec, seed=None)
    configs: list[dict[str, Any] | str | None] = []
    while (config := searcher.suggest(str(len(configs)))) != ConditionalVariants.FINISHED:
        configs.append(config)
    first, second = configs[:6], configs[6:]
    assert first == second  # num_samples passes over the same points, as Ray's generator
    expected = valid_grid(spec)
    assert len(first) == len(expected) == 6
    assert all(point in first for point in expected)


def test_random_search_resumes_where_its_snapshot_left_off(tmp_path: Path) -> None:
    spec = parse_spec(
        sweep(
            {**CHAINED, "batch": {"type": "grid", "values": [32, 64]}},
            {"kind": "random", "seed": 7},
            num_samples=5,
        )
    )
    searcher = ConditionalVariants(spec, seed=7)
    first = [searcher.suggest(str(i)) for i in range(4)]
    searcher.save(str(tmp_path / "searcher.pkl"))
    whole = ConditionalVariants(spec, seed=7)
    expected = [whole.suggest(str(i)) for i in range(10)]
    restored = ConditionalVariants(spec, seed=None)
    restored.restore(str(tmp_path / "searcher.pkl"))
    rest = [restored.suggest(str(i)) for i in range(4, 10)]
    assert first + rest == expected
    assert restored.suggest("10") == ConditionalVariants.FINISHED
    for config in expected:
        assert_honours_conditions(config_of(config))
    assert [config_of(config)["batch"] for config in expected] == [32, 64] * 5
    assert pickle.loads(pickle.dumps(restored)).made == 10


# --- end to end through the CLI --------------------------------------------------------


def trial_runs(tracking_uri: str, name: str) -> list[Any]:
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parent = next(run for run in runs if run.data.tags.get(TAG_ROLE) == "sweep")
    return [run for run in runs if run.data.tags.get(TAG_PARENT) == parent.info.run_id]


def typed(params: dict[str, str]) -> dict[str, Any]:
    """MLflow keeps params as strings; read them back as the sweep file wrote them."""
    return {name: yaml.safe_load(value) for name, value in params.items()}


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("searcher", "params", "num_samples"),
    [
        pytest.param({"kind": "optuna", "sampler": "tpe", "seed": 0}, CHAINED, 20, id="tpe"),
        pytest.param(
            {"kind": "grid"},
            {name: p for name, p in CHAINED.items() if name not in ("lr", "beta1")}
            | {"lr": {"type": "grid", "values": [0.01]}},
            1,
            id="grid",
        ),
    ],
)
def test_absent_params_never_reach_the_trial_or_mlflow(
    tmp_path: Path, searcher: dict[str, Any], params: dict[str, Any], num_samples: int
) -> None:
    name = f"conditional-{searcher['kind']}"
    path = tmp_path / "sweep.yaml"
    spec = sweep(params, searcher, num_samples=num_samples, max_concurrent_trials=2)
    path.write_text(yaml.safe_dump({**spec, "name": name, "stop": {"training_iteration": 2}}))
    result = run_cli("run", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = trial_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", name)
    expected = parse_spec(spec).expected_trials()
    assert len(runs) == expected
    configs = []
    for run in runs:
        config = typed(run.data.params)
        assert_honours_conditions(config, params)
        for key in ("momentum", "nesterov", "beta1") & params.keys():
            # What the trial's own process received matches what MLflow shows.
            assert run.data.metrics[f"got_{key}"] == float(key in config), (key, config)
        configs.append(config)
    if searcher["kind"] == "grid":
        expected_points = valid_grid(parse_spec(spec))
        as_sets = {frozenset(config.items()) for config in configs}
        assert as_sets == {frozenset(point.items()) for point in expected_points}
    else:
        assert {c["optimizer"] for c in configs} == {"sgd", "adam", "rmsprop"}
