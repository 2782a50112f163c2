"""Conditional spaces: params sampled only when their `when:` holds, absent otherwise.

Optuna gets the space define-by-run, so TPE models each param on the trials that
sampled it. Ray's grid and random generator take only flat spaces (a `sample_from`
can change a value, not leave a key out), so a conditional grid or random sweep runs
on `ConditionalVariants`: the same points in Ray's order, each value drawn from Ray's
own domains, keys left out where a condition fails.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
from ray.tune.search import Searcher

from tuner.search.space import tune_domain
from tuner.spec import CategoricalParam, FloatParam, GridParam, IntParam, Param, SweepSpec
from tuner.spec.conditions import grid_points, holds, ordered


class ConditionalSpace:
    """Optuna's define-by-run space for a sweep's params (picklable: Ray saves it with
    the searcher's state for `tuner resume`)."""

    def __init__(self, params: dict[str, Param]) -> None:
        self.params = params
        self.order = ordered(params)

    def __call__(self, trial: Any) -> None:
        sampled: dict[str, Any] = {}
        for name in self.order:
            param = self.params[name]
            if holds(param, sampled):
                sampled[name] = _suggest(trial, name, param)


def _suggest(trial: Any, name: str, param: Param) -> Any:
    if isinstance(param, FloatParam):
        return trial.suggest_float(name, param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, IntParam):
        return trial.suggest_int(name, param.low, param.high, log=param.log, step=param.step or 1)
    if isinstance(param, CategoricalParam | GridParam):
        return trial.suggest_categorical(name, list(param.options))
    raise TypeError(f"unknown param {param!r}")


class ConditionalVariants(Searcher):  # type: ignore[misc]
    """Grid and random search over a conditional space, as Ray's generator would run it:
    `num_samples` passes over the grid's points (those whose conditions hold), the other
    params drawn at random for each trial, in the order their conditions need. The
    first samples take the values their starting points give."""

    def __init__(
        self, spec: SweepSpec, seed: int | None, points: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(metric=spec.metric, mode=spec.mode)
        self.params = dict(spec.params)
        self.order = ordered(self.params)
        self.points = list(grid_points(self.params, spec.is_grid_axis))
        self.axes = {name for name, param in self.params.items() if spec.is_grid_axis(param)}
        self.total = spec.num_samples * len(self.points)
        self.first = [dict(point) for point in points or []]  # sample i takes first[i]
        self.made = 0
        self.rng = np.random.default_rng(seed)

    # Ray's signature leaves out the FINISHED string its own searchers return.
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        if self.made >= self.total:
            return str(Searcher.FINISHED)
        sample, index = divmod(self.made, len(self.points))
        point = self.points[index]
        given = self.first[sample] if sample < len(self.first) else {}
        self.made += 1
        sampled: dict[str, Any] = {}
        for name in self.order:
            param = self.params[name]
            if name in self.axes:
                if name in point:
                    sampled[name] = point[name]
            elif holds(param, sampled):
                sampled[name] = (
                    given[name]
                    if name in given
                    else tune_domain(param).sample(random_state=self.rng)
                )
        return sampled

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Random and grid points do not depend on results."""

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as file:
            pickle.dump(self.__dict__, file)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as file:
            self.__dict__.update(pickle.load(file))
