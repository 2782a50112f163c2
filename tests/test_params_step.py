"""Quantized ranges (`step`), as users translate them from Ray's quniform/qrandint and
Optuna's step: every searcher samples only the steps, both ends included."""

from __future__ import annotations

import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from ray.tune.search.sample import Domain

from tuner.search.distributions import optuna_distribution
from tuner.search.space import param_space
from tuner.spec import SpecError, SweepSpec, parse_spec

BASE = {
    "name": "steps",
    "trainable": "tests.trainables:report_twice",
    "metric": "score",
    "mode": "max",
    "searcher": {"kind": "random", "seed": 0},
}


def spec_with(**params: object) -> SweepSpec:
    return parse_spec({**BASE, "params": params})


def test_int_steps_are_sampled_with_both_ends_included() -> None:
    spec = spec_with(width={"type": "int", "low": 16, "high": 64, "step": 16})
    domain = param_space(spec)["width"]
    assert isinstance(domain, Domain)
    seen = {domain.sample() for _ in range(400)}
    assert seen == {16, 32, 48, 64}
    distribution = optuna_distribution(spec.params["width"])
    assert isinstance(distribution, IntDistribution)
    assert (distribution.low, distribution.high, distribution.step) == (16, 64, 16)


def test_float_steps_are_sampled_on_the_grid() -> None:
    spec = spec_with(dropout={"type": "float", "low": 0.0, "high": 0.5, "step": 0.1})
    domain = param_space(spec)["dropout"]
    seen = {round(domain.sample(), 9) for _ in range(400)}
    assert seen <= {0.0, 0.1, 0.2, 0.3, 0.4, 0.5} and len(seen) >= 5
    distribution = optuna_distribution(spec.params["dropout"])
    assert isinstance(distribution, FloatDistribution)
    assert distribution.step == 0.1


@pytest.mark.parametrize(
    ("param", "values"),
    [
        ({"type": "int", "low": 1, "high": 9, "step": 2}, {1, 3, 5, 7, 9}),
        ({"type": "float", "low": 0.05, "high": 0.45, "step": 0.1}, {0.05, 0.15, 0.25, 0.35, 0.45}),
    ],
)
def test_random_search_steps_from_low_as_optuna_does(
    param: dict[str, object], values: set[float]
) -> None:
    """Ray's qrandint(1, 9, 2) rounds to multiples of 2 (2, 4, ...): not the sweep's values."""
    spec = spec_with(x=param)
    domain = param_space(spec)["x"]
    assert {domain.sample() for _ in range(400)} == values
    distribution = optuna_distribution(spec.params["x"])
    assert all(distribution._contains(distribution.to_internal_repr(v)) for v in values)


@pytest.mark.parametrize(
    ("param", "problem"),
    [
        ({"type": "int", "low": 0, "high": 10, "step": 3}, "is not a multiple of step"),
        ({"type": "float", "low": 0.0, "high": 1.0, "step": 0.3}, "is not a multiple of step"),
        (
            {"type": "float", "low": 0.001, "high": 0.1, "log": True, "step": 0.001},
            "step and log: true together are not supported",
        ),
        ({"type": "int", "low": 0, "high": 10, "step": 0}, "greater than 0"),
    ],
)
def test_a_step_that_does_not_fit_is_one_line(param: dict[str, object], problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        spec_with(x=param)
    assert caught.value.key == "params.x.step"
    assert problem in caught.value.problem
