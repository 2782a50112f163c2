"""Sweep params as Optuna distributions: what Optuna's searcher samples from, and what a
sweep's trials are read back into for its report. Imports Optuna only, not Ray."""

from __future__ import annotations

import optuna

from tuner.spec import CategoricalParam, FloatParam, GridParam, IntParam, Param, SweepSpec


def optuna_distribution(param: Param) -> optuna.distributions.BaseDistribution:
    """A grid axis, which the optuna searcher does not take, reads back as categorical."""
    if isinstance(param, FloatParam):
        return optuna.distributions.FloatDistribution(
            param.low, param.high, log=param.log, step=param.step
        )
    if isinstance(param, IntParam):
        return optuna.distributions.IntDistribution(
            param.low, param.high, log=param.log, step=param.step or 1
        )
    if isinstance(param, CategoricalParam | GridParam):
        return optuna.distributions.CategoricalDistribution(list(param.options))
    raise TypeError(f"unknown param {param!r}")


def optuna_space(spec: SweepSpec) -> dict[str, optuna.distributions.BaseDistribution]:
    return {name: optuna_distribution(param) for name, param in spec.params.items()}
