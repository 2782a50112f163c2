"""Conditional params: which params a trial samples, given what it sampled before.

A param with `when: {optimizer: [sgd]}` is sampled only when `optimizer` was sampled
and took `sgd`; with several names, every one must hold. Conditions chain: a param may
depend on a conditional param, which makes it absent whenever that one is. A trial's
config leaves an absent param out, so the trainable's default applies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tuner.spec.errors import KeyedProblem
from tuner.spec.params import CategoricalParam, GridParam, Param, Scalar


def same_value(a: object, b: object) -> bool:
    """YAML's `true` is not the number 1: compare as the sweep file wrote them."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def holds(param: Param, sampled: Mapping[str, Any]) -> bool:
    """Whether `param` is sampled, given the values sampled so far (earlier in order)."""
    if param.when is None:
        return True
    return all(
        name in sampled and any(same_value(sampled[name], value) for value in values)
        for name, values in param.when.items()
    )


def ordered(params: Mapping[str, Param]) -> list[str]:
    """The params' names, each after every param its condition names (the file's order
    otherwise). The conditions must already be checked (no cycles)."""
    done: list[str] = []
    placed: set[str] = set()

    def place(name: str) -> None:
        if name in placed:
            return
        for parent in params[name].when or {}:
            place(parent)
        placed.add(name)
        done.append(name)

    for name in params:
        place(name)
    return done


def check_conditions(params: Mapping[str, Param], *, grid_axes_only_on_grid: bool) -> None:
    """One KeyedProblem for the first condition a sweep cannot honour.

    `grid_axes_only_on_grid`: the random searcher repeats its grid for every sample, so
    a grid axis may depend only on other grid axes; otherwise the grid's size would
    change from trial to trial.
    """
    for name, param in params.items():
        for parent, values in (param.when or {}).items():
            where = f"params.{name}.when.{parent}"
            if parent not in params:
                raise KeyedProblem(where, f"names no param (params: {', '.join(params)})")
            target = params[parent]
            if not isinstance(target, CategoricalParam | GridParam):
                raise KeyedProblem(
                    where,
                    f"{parent} is a {target.type} range; a condition needs a param "
                    "with listed values (type: categorical or grid)",
                )
            for value in values:
                if not any(same_value(value, option) for option in target.options):
                    shown = ", ".join(_as_yaml(option) for option in target.options)
                    raise KeyedProblem(
                        where,
                        f"{_as_yaml(value)} is not among {parent}'s {target.options_key} ({shown})",
                    )
            if (
                grid_axes_only_on_grid
                and isinstance(param, GridParam)
                and not isinstance(target, GridParam)
            ):
                raise KeyedProblem(
                    where,
                    f"a grid axis may depend only on grid axes; {parent} is "
                    f"{target.type}, sampled afresh for each trial",
                )
    if (cycle := _cycle(params)) is not None:
        raise KeyedProblem(
            f"params.{cycle[0]}.when", f"conditions form a cycle: {' -> '.join(cycle)}"
        )


def _as_yaml(value: Scalar) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value)


def _cycle(params: Mapping[str, Param]) -> list[str] | None:
    """A cycle of conditions as a path that starts and ends at one name, if there is one."""
    state: dict[str, str] = {}  # "open" on the current path, "done" when cleared

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = "open"
        for parent in params[name].when or {}:
            if state.get(parent) == "open":
                return [*path[path.index(parent) :], parent]
            if parent not in state and (found := visit(parent, [*path, parent])):
                return found
        state[name] = "done"
        return None

    for name in params:
        if name not in state and (found := visit(name, [name])):
            return found
    return None


def is_conditional(params: Mapping[str, Param]) -> bool:
    return any(param.when is not None for param in params.values())


def grid_points(
    params: Mapping[str, Param], is_axis: Callable[[Param], bool]
) -> Iterator[dict[str, Scalar]]:
    """Every combination of the axes' values whose conditions hold, in Ray's order (the
    first axis varies slowest). An axis whose condition fails is left out of its points."""
    axes = [name for name in ordered(params) if is_axis(params[name])]

    def extend(index: int, point: dict[str, Scalar]) -> Iterator[dict[str, Scalar]]:
        if index == len(axes):
            yield dict(point)
            return
        name = axes[index]
        param = params[name]
        if not holds(param, point):
            yield from extend(index + 1, point)
            return
        assert isinstance(param, CategoricalParam | GridParam)
        for value in param.options:
            point[name] = value
            yield from extend(index + 1, point)
            del point[name]

    yield from extend(0, {})


def count_up_to(points: Iterator[object], limit: int) -> int:
    """How many points there are, counting no further than limit + 1."""
    count = 0
    for _ in points:
        count += 1
        if count > limit:
            break
    return count
