"""What a knob's value may be beyond its type: one line that says what it takes.

Pydantic reads YAML's `hidden: true` as 1, and for a knob that is a switch or a named
choice (`bool | Literal[...]`) it reports only why a wrong value is not a boolean. Both
are caught here, before pydantic's own validation, with the knob's real choices.
"""

from __future__ import annotations

from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import TypeAdapter, ValidationError

_BOOL = TypeAdapter(bool)


def value_problem(annotation: Any, value: Any) -> str | None:
    """Why `value` cannot be a knob of this type, in the knob's terms; None if it may."""
    if isinstance(value, bool) and annotation in (int, float):
        return f"must be a number, not {str(value).lower()}"
    choices = switch_choices(annotation)
    if not choices or value in choices:
        return None
    try:
        _BOOL.validate_python(value)  # "true", "off", 1...: pydantic takes these
    except ValidationError:
        return f"must be true, false or one of {', '.join(choices)}, not {value!r}"
    return None


def switch_choices(annotation: Any) -> tuple[Any, ...]:
    """The names a `bool | Literal[...]` knob takes besides true and false; else ()."""
    if get_origin(annotation) not in (Union, UnionType) or bool not in get_args(annotation):
        return ()
    return tuple(
        value
        for branch in get_args(annotation)
        if get_origin(branch) is Literal
        for value in get_args(branch)
    )
