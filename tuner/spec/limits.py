"""What a sweep file may be: a small YAML mapping. Bounds that keep a careless or hostile
file from taking the machine's memory or time before it is refused in one line: its size
in bytes, its values once YAML's aliases are expanded, its depth, and keys written twice
(YAML keeps the last silently; a sweep once became 5,000 trials that way)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from tuner.spec.errors import KeyedYAMLError, SpecError
from tuner.spec.yaml_words import refuse_boolean_words_in_lists

MAX_FILE_BYTES = 1024 * 1024  # the shipped sweeps are under 2 KB
MAX_VALUES = 100_000  # keys and values, with every alias expanded where it is used
MAX_DEPTH = 64
_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKey(KeyedYAMLError):
    """A key written twice in one mapping."""


class SweepFileLoader(yaml.SafeLoader):  # type: ignore[misc]
    """YAML's safe loader, refusing a key written twice in one mapping (a `<<` merge may
    still be overridden: that is what merging is for)."""

    def construct_document(self, node: Node) -> Any:
        refuse_boolean_words_in_lists(node)
        return super().construct_document(node)

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[str, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                    continue
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    raise DuplicateKey(
                        str(key_node.value),
                        f"written twice, at lines {seen[key_node.value]} and {line} "
                        "(YAML would keep the last one silently)",
                    )
                seen[key_node.value] = line
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        # PyYAML lets a value its constructors cannot read escape as a bare ValueError or
        # KeyError (`2001-13-45` resolves to a date, `!!bool maybe`, an integer of more
        # than the 4,300 digits Python reads): a traceback, not one line with its place.
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, _unreadable(node, exc), node.start_mark
            ) from None

    def construct_yaml_int(self, node: ScalarNode) -> int:
        value: int = super().construct_yaml_int(node)
        # YAML 1.1 reads `017` as octal 15 and `1:30` as 90 (base 60): a setting that is
        # silently not the number written. 0x and 0b say what they are.
        text = str(node.value).replace("_", "").lstrip("+-")
        if ":" in text:
            raise _misread(node, f"as base 60, {value}: write {value}, or quote it for text")
        if text.startswith("0") and text.lstrip("0") and not text.startswith(("0x", "0b")):
            raise _misread(
                node,
                f"as octal, {value}: write {'-' if value < 0 else ''}{text.lstrip('0')} "
                "without the leading 0",
            )
        return value

    def construct_yaml_float(self, node: ScalarNode) -> float:
        value: float = super().construct_yaml_float(node)
        if ":" in str(node.value):
            raise _misread(node, f"as base 60, {value}: write {value}, or quote it for text")
        return value


def _misread(node: ScalarNode, how: str) -> yaml.constructor.ConstructorError:
    return yaml.constructor.ConstructorError(
        None, None, f"YAML 1.1 reads {node.value} {how}", node.start_mark
    )


SweepFileLoader.add_constructor("tag:yaml.org,2002:int", SweepFileLoader.construct_yaml_int)
SweepFileLoader.add_constructor("tag:yaml.org,2002:float", SweepFileLoader.construct_yaml_float)


def _unreadable(node: Node, exc: Exception) -> str:
    kind = str(node.tag).removeprefix("tag:yaml.org,2002:")
    text = str(node.value) if isinstance(node, ScalarNode) else ""
    if kind == "int" and "digits" in str(exc):
        digits = sum(ch.isdigit() for ch in text)
        return f"an integer of {digits:,} digits is too large to be a setting"
    shown = text if len(text) <= 40 else text[:37] + "..."
    why = f" ({exc})" if isinstance(exc, ValueError) and str(exc) else ""
    return f"{shown!r} is not a valid {kind}{why}"


SweepFileLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, SweepFileLoader.construct_mapping
)


def check_size(raw: Any, file: str | Path) -> None:
    """Walk the parsed file as the schema will, stopping at the bounds: YAML's aliases
    make a 1 KB file expand to billions of values (a "billion laughs")."""
    count = 0
    stack: list[tuple[Any, int]] = [(raw, 0)]
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise SpecError(file, "", f"expands to more than {MAX_VALUES:,} values (YAML aliases?)")
        if depth > MAX_DEPTH:
            raise SpecError(file, "", f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            count += len(value)
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
