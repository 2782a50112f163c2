"""What a trainable hands `report()`, checked before Ray reads it.

Code adapted from older examples calls `tune.report(loss)` with a bare number or passes
`checkpoint=` the folder it saved into. Ray then failed the trial with a line about its
own internals (`AttributeError: 'float' object has no attribute 'items'`, `'str' object
has no attribute 'path'`) that points at no line of the user's code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ReportCallError(TypeError):
    """`report()` was handed something it does not take: the trial fails with this line."""


def check_call(metrics: Any, checkpoint: Any, *, call: str, example: str) -> None:
    """Raise ReportCallError unless `metrics` is a dict and `checkpoint` None or a Ray
    Checkpoint. `call`: what the user called (`ray.tune.report`); `example`: the inside
    of the dict it should get (`'loss': value`)."""
    if not isinstance(metrics, Mapping):
        raise ReportCallError(
            f"{call}() takes a dict of metrics, not {_kind(metrics)}: {call}({{{example}: value}})"
        )
    if checkpoint is None:
        return
    from ray.train import Checkpoint  # ray.tune.Checkpoint is a subclass

    if not isinstance(checkpoint, Checkpoint):
        module = call.rsplit(".", 1)[0]
        raise ReportCallError(
            f"{call}(checkpoint=...) takes a {module}.Checkpoint, not {_kind(checkpoint)}: "
            f"checkpoint={module}.Checkpoint.from_directory(folder)"
        )


def _kind(value: Any) -> str:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else f"{shown[:37]}..."
    return f"a {type(value).__name__} ({shown})"
