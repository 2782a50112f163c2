"""User trainables as their authors wrote them: what runs around them in the Ray worker.

Training code reports what its libraries hand back: `np.mean(...)` is a numpy scalar,
a loss without `.item()` a 0-d torch tensor. Ray refuses a torch tensor in a result (it
may not unpickle on the driver: a CUDA tensor on a CPU head) and the driver would see a
numpy value as something other than a number. The wrapper here turns every single-number
value into a float in the worker, before Ray sees the result; nothing else changes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from tuner.tracking.results import as_number

Trainable = Callable[[dict[str, Any]], None]


def plain_numbers(metrics: dict[str, Any]) -> dict[str, Any]:
    """`metrics` with numpy scalars, 0-d arrays and 0-d tensors as floats, nested too.

    Python's own numbers and everything that is not one number are left as they are.
    """
    plain: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            plain[key] = plain_numbers(value)
        elif isinstance(value, bool | int | float):
            plain[key] = value
        else:
            number = as_number(value)
            plain[key] = value if number is None else number
    return plain


def _session() -> Any:
    """The trial's Ray session in this worker, or None outside a trial.

    `ray.tune.report` (however it was imported) ends in the session's `report`: the one
    place to see every result of a function trainable.
    """
    try:
        from ray.train._internal.session import get_session
    except ImportError:  # another Ray layout: results go to Ray untouched
        return None
    return get_session()


def reporting_plain_numbers(fn: Trainable) -> Trainable:
    """`fn` run with each `tune.report` it makes turned into plain numbers first."""

    @functools.wraps(fn)
    def trainable(config: dict[str, Any]) -> None:
        session = _session()
        if session is None:
            fn(config)
            return
        report = session.report

        def plain_report(metrics: dict[str, Any], checkpoint: Any = None) -> None:
            report(plain_numbers(metrics), checkpoint=checkpoint)

        # On this session object only: it lives as long as this trial.
        session.report = plain_report
        try:
            fn(config)
        finally:
            session.report = report

    return trainable
