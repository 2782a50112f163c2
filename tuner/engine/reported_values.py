"""The values of a trial's result as Ray can carry them: numbers as floats, the rest named.

Training code reports what its libraries hand back: `np.mean(...)` is a numpy scalar, a
loss without `.item()` a 0-d torch tensor, `torch.tensor([x])` or a `keepdim` mean a
tensor of one value, money and rounding code a `Decimal`. Ray refuses a torch tensor in
a result (it may not unpickle on the driver: a CUDA tensor on a CPU head) and its
driver does arithmetic on every `numbers.Number` it sees, which a `Decimal` or a complex
number breaks: the whole sweep ended with a traceback. Here, in the worker, each value
of one number becomes a float, and one Ray cannot take fails the trial with its name.
"""

from __future__ import annotations

import numbers
import sys
from typing import Any

from tuner.tracking.results import as_number


class UnreportableValue(ValueError):
    """A result holds a value Ray cannot carry: the trial fails with this one line."""


def plain_numbers(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`metrics` with each value of one number as a float (in lists too), and nested
    dicts flattened as Ray flattens them for its scheduler (`val/loss`), so that the
    tracking, the best trial and the searcher all see the same keys.

    Python's own numbers, strings and other values Ray takes are left as they are; a
    torch tensor of several values, a torch module or a complex number raises
    UnreportableValue naming its key.
    """
    plain: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            plain.update(plain_numbers(value, f"{name}/"))
        else:
            plain[name] = _plain(value, name)
    return plain


def _plain(value: Any, name: str) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    number = as_number(value)
    if number is not None:
        return number
    if isinstance(value, list | tuple):
        # Per-class scores as a list of 0-d tensors: Ray refuses a tensor at any depth.
        return type(value)([_plain(item, f"{name}[{i}]") for i, item in enumerate(value)])
    if isinstance(value, numbers.Number):  # a complex number, a signalling-NaN Decimal
        raise UnreportableValue(
            f"{name!r} is a {type(value).__name__} ({value}), not one real number: "
            "report a float (for a complex number, its .real or abs())"
        )
    torch = sys.modules.get("torch")  # a torch value exists only where torch was imported
    if torch is not None and isinstance(value, torch.Tensor):
        raise UnreportableValue(
            f"{name!r} is a torch tensor of shape {tuple(value.shape)}: a result holds "
            "numbers (tensor.item() for one value); save tensors in a checkpoint"
        )
    if torch is not None and isinstance(value, torch.nn.Module):
        raise UnreportableValue(
            f"{name!r} is a torch module ({type(value).__name__}): a result holds "
            "numbers; save the model in a checkpoint"
        )
    return value
