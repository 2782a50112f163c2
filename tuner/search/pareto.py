"""Pareto ranking of results with several objectives, as pure functions.

Points are tuples signed so that higher is better in every objective (Ray's convention
for one: `mode: min` values are negated). A NaN objective counts as the worst value.
Non-dominated sorting and crowding distance are NSGA-II's (Deb et al., 2002); ranking a
rung by them is multi-objective ASHA's rule (Schmucker et al., 2021).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tuner.search.promotion import promoted_count

Point = tuple[float, ...]


def _clean(point: Sequence[float]) -> Point:
    return tuple(-math.inf if math.isnan(value) else value for value in point)


def dominates(a: Point, b: Point) -> bool:
    """a is at least as good as b in every objective and better in one."""
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(
        x > y for x, y in zip(a, b, strict=True)
    )


def nondominated_ranks(points: Sequence[Sequence[float]]) -> list[int]:
    """Each point's front: 0 for the Pareto front, 1 for the front once it is removed, ...

    Deb's fast non-dominated sort on a dominance matrix: O(n^2 k) comparisons, done by
    numpy (a rung of 1,000 points takes milliseconds; in Python it took seconds, in the
    driver's result loop)."""
    if not points:
        return []
    values = np.array([_clean(point) for point in points], dtype=float)
    at_least: np.ndarray = np.all(values[:, None, :] >= values[None, :, :], axis=2)
    better: np.ndarray = np.any(values[:, None, :] > values[None, :, :], axis=2)
    dominates_matrix: np.ndarray = at_least & better  # [i, j]: point i dominates point j
    dominated_count = dominates_matrix.sum(axis=0)
    ranks = np.full(len(values), -1)
    rank = 0
    front = np.flatnonzero(dominated_count == 0)
    while front.size:
        ranks[front] = rank
        dominated_count = dominated_count - dominates_matrix[front].sum(axis=0)
        dominated_count[ranks >= 0] = -1  # placed: never again
        front = np.flatnonzero(dominated_count == 0)
        rank += 1
    return [int(rank) for rank in ranks]


def crowding_distances(
    points: Sequence[Sequence[float]], members: Sequence[int]
) -> dict[int, float]:
    """How isolated each member of one front is: the sum over objectives of the gap
    between its neighbours, scaled by the front's span; the ends get infinity."""
    clean = {i: _clean(points[i]) for i in members}
    distance = dict.fromkeys(members, 0.0)
    objectives = len(next(iter(clean.values()))) if clean else 0
    for k in range(objectives):
        ordered = sorted(members, key=lambda i: clean[i][k])
        low, high = clean[ordered[0]][k], clean[ordered[-1]][k]
        distance[ordered[0]] = distance[ordered[-1]] = math.inf
        span = high - low
        if not math.isfinite(span) or span == 0:
            continue
        for before, member, after in zip(ordered, ordered[1:], ordered[2:], strict=False):
            distance[member] += (clean[after][k] - clean[before][k]) / span
    return distance


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points, in their given order."""
    return [i for i, rank in enumerate(nondominated_ranks(points)) if rank == 0]


def promoted_by_rank(new: Sequence[float], earlier: Sequence[Sequence[float]], rf: float) -> bool:
    """Whether a trial reaching a rung with `new` goes on, given the points recorded there
    before it: it must rank in the top n // rf of the n (itself included) by front, then
    by crowding distance within its front; ties go its way, as with one objective."""
    points = [*earlier, new]
    ranks = nondominated_ranks(points)
    me = len(points) - 1
    crowding = crowding_distances(points, [i for i, r in enumerate(ranks) if r == ranks[me]])
    ahead = sum(
        1
        for i in range(me)
        if ranks[i] < ranks[me] or (ranks[i] == ranks[me] and crowding[i] > crowding[me])
    )
    return ahead < promoted_count(len(points), rf)
