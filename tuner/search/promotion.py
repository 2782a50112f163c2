"""ASHA's promotion rule as a pure decision over the rewards recorded at a rung.

Rewards are signed so that higher is better (Ray's convention). A trial goes on past a
rung if it ranks in the top n // reduction_factor of the n trials recorded there, itself
included; while fewer than reduction_factor trials have reached the rung, only the best so
far goes on. This is the rule of ASHA's paper (Li et al., 2020) and of Optuna's
successive halving.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def promoted_count(trials_at_rung: int, reduction_factor: float) -> int:
    """How many of the `trials_at_rung` trials recorded at a rung go on (at least one)."""
    return max(1, int(trials_at_rung // reduction_factor))


def promotion_cutoff(earlier_rewards: Iterable[float], reduction_factor: float) -> float | None:
    """The reward a new trial must reach to go on, given the rewards recorded before it.

    A new trial with reward r goes on when r >= the returned value (None: it goes on
    whatever it scored, as when it is the first). Earlier NaN rewards are left out.
    """
    earlier = sorted((r for r in earlier_rewards if not math.isnan(r)), reverse=True)
    promoted = promoted_count(len(earlier) + 1, reduction_factor)
    if promoted > len(earlier):
        return None
    return earlier[promoted - 1]


def rung_epochs(grace_period: int, max_t: int, reduction_factor: float) -> list[int]:
    """The epochs at which ASHA judges a trial, ascending: grace_period * rf**k up to max_t.

    The same rungs as Ray's bracket (s=0); a rung at a fractional milestone is judged at
    the first whole epoch past it, the first result whose iteration count reaches it.
    """
    rungs = []
    milestone = float(grace_period)
    while milestone <= max_t + 1e-9:
        rungs.append(math.ceil(milestone - 1e-9))
        milestone *= reduction_factor
    return sorted(set(rungs))
