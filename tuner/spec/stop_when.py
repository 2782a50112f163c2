"""`stop_when`: a sweep that ends when little is left to gain.

`stop_when: {regret_below: 0.002}` ends a sweep once Optuna's regret bound (Makarova
et al., 2022: a high-probability upper bound on how much better than the best trial the
optimum is, from a Gaussian process fit to the trials that ran to the end) falls below
the threshold, in the metric's units. No new trial starts; running ones end after their
current result.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from pydantic import Field, StrictInt

from tuner.spec.errors import KeyedProblem
from tuner.spec.strict import Strict


class StopWhen(Strict):
    regret_below: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    # Not Optuna's 20: on Hartmann-6 (bench/stop_when.py) the bound after 20 trials was
    # overconfident (a sweep stopped with 1.26 left under a bound of 0.5, on most seeds);
    # after 40 it held on 10 of 13 stopped seeds at 0.7 and on all 5 at 0.5.
    min_trials: Annotated[StrictInt, Field(ge=2)] = 40


class _Sweep(Protocol):
    @property
    def stop_when(self) -> StopWhen | None: ...
    @property
    def searcher(self) -> Any: ...
    @property
    def is_multi_objective(self) -> bool: ...


def check_stop_when(spec: _Sweep) -> None:
    if spec.stop_when is None:
        return
    if spec.searcher.kind != "optuna":
        raise KeyedProblem(
            "stop_when",
            f"needs searcher kind optuna (it is {spec.searcher.kind}): the regret bound is "
            "estimated from the Optuna study's trials",
        )
    if spec.is_multi_objective:
        raise KeyedProblem(
            "stop_when", "estimates the regret of one objective; give metric and mode"
        )
