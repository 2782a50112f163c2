"""A stepped range for Ray's grid and random generator: low, low + step, ... high.

Ray's quniform and qrandint round to multiples of the step (`qrandint(1, 9, 2)` gives
2, 4, ...), which leaves a range whose low is not a multiple of its step: Optuna samples
1, 3, 5, 7, 9 for the same param. This sampler draws a step count uniformly instead, so
a sweep means the same whatever its searcher.
"""

from __future__ import annotations

from copy import copy
from typing import Any

from ray.tune.search.sample import Float, Integer, Sampler, _BackwardsCompatibleNumpyRng

# Sums of float steps carry noise (0.1 * 3 = 0.30000000000000004): keep 12 digits.
FLOAT_DIGITS = 12


class OnSteps(Sampler):  # type: ignore[misc]
    def __init__(self, low: float, step: float, steps: int) -> None:
        self.low = low
        self.step = step
        self.steps = steps  # the values are low + k * step for k in 0..steps

    def sample(
        self,
        domain: Any,
        config: Any = None,
        size: int = 1,
        random_state: Any = None,
    ) -> Any:
        if not isinstance(random_state, _BackwardsCompatibleNumpyRng):
            random_state = _BackwardsCompatibleNumpyRng(random_state)
        counts = random_state.integers(0, self.steps + 1, size=size)
        items = [domain.cast(round(self.low + self.step * int(k), FLOAT_DIGITS)) for k in counts]
        return items if len(items) > 1 else items[0]


def stepped(low: float, high: float, step: float, *, integer: bool) -> Float | Integer:
    """The range's domain, sampling low + k * step (high is low + steps * step)."""
    domain = Integer(int(low), int(high) + 1) if integer else Float(low, high)
    domain = copy(domain)
    domain.set_sampler(OnSteps(low, step, round((high - low) / step)))
    return domain
