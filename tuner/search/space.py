"""Sweep params -> Ray Tune domains (grid/random); Optuna's are in distributions.py."""

from __future__ import annotations

from typing import Any

from ray import tune

from tuner.search.stepped import stepped
from tuner.spec import (
    FloatParam,
    GridParam,
    GridSearcher,
    IntParam,
    OptunaSearcher,
    Param,
    SweepSpec,
)
from tuner.spec.conditions import is_conditional


def tune_domain(param: Param, *, exhaustive_categoricals: bool = False) -> Any:
    if isinstance(param, FloatParam):
        if param.step is not None:
            return stepped(param.low, param.high, param.step, integer=False)
        return (tune.loguniform if param.log else tune.uniform)(param.low, param.high)
    if isinstance(param, IntParam):
        if param.step is not None:
            return stepped(param.low, param.high, param.step, integer=True)
        # Ray's integer domains exclude the upper bound; ours include it.
        return (tune.lograndint if param.log else tune.randint)(param.low, param.high + 1)
    if isinstance(param, GridParam):
        return tune.grid_search(list(param.values))
    if exhaustive_categoricals:
        return tune.grid_search(list(param.choices))
    return tune.choice(list(param.choices))


def param_space(spec: SweepSpec) -> dict[str, Any]:
    """The Tuner's param_space: searched domains (unless Optuna owns them) plus fixed config.

    With the optuna searcher, or a conditional space, the space lives in the searcher,
    and the fixed config travels as constants that Ray merges into every suggested config.
    """
    fixed = dict(spec.config)
    if isinstance(spec.searcher, OptunaSearcher) or is_conditional(spec.params):
        return fixed
    exhaustive = isinstance(spec.searcher, GridSearcher)
    domains = {
        name: tune_domain(param, exhaustive_categoricals=exhaustive)
        for name, param in spec.params.items()
    }
    return {**domains, **fixed}
