"""Reading a sweep file: YAML, then the schema; every failure is one SpecError line.

Whether the trainable it names imports and accepts its params is checked one layer up
(`tuner.load_spec`), where the trainers are known: this package imports neither Ray nor
torch nor user code.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tuner.spec.errors import KeyedProblem, KeyedYAMLError, SpecError
from tuner.spec.limits import MAX_FILE_BYTES, SweepFileLoader, check_size
from tuner.spec.schema import SweepSpec

_FRIENDLY = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
    "finite_number": "must be a finite number, not NaN or infinity",
}


def _key_path(raw: Any, loc: tuple[int | str, ...]) -> str:
    """Turn pydantic's loc into the user's key path, dropping the union tags it inserts."""
    keys: list[str] = []
    node: Any = raw
    for part in loc:
        if isinstance(node, dict) and part in node:
            keys.append(str(part))
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            keys[-1:] = [f"{keys[-1]}[{part}]"] if keys else [f"[{part}]"]
            node = node[part]
        elif isinstance(node, dict) and part in (node.get("type"), node.get("kind")):
            continue  # a discriminated union's tag, not a key the user wrote
        else:
            keys.append(str(part))  # a missing key: it is not in the file to descend into
            node = None
    return ".".join(keys)


def _problem(error: Any, raw: Any) -> tuple[str, str]:
    """(key path, problem) of one pydantic error, in the words of the sweep file."""
    ctx_error = (error.get("ctx") or {}).get("error")
    if isinstance(ctx_error, KeyedProblem):
        return ctx_error.key, ctx_error.problem
    loc = tuple(error["loc"])
    kind = error["type"]
    if loc and loc[-1] == "[key]":  # `on:`, `yes:`, `1.5:` are no text to YAML
        name = yaml.safe_dump(error.get("input")).removesuffix("\n...\n").strip()
        return _key_path(raw, loc[:-2]), (
            f"YAML reads a name here as {name}, not as text (yes, no, on, off, null and "
            "numbers are values to YAML): write the name in quotes"
        )
    key = _key_path(raw, loc)
    if kind == "not_a_scalar":
        return key, f"{error['msg']}, not {_described(error.get('input'))}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        # Pydantic points at the union; the user wrote (or forgot) its tag key.
        ctx = error["ctx"]
        tag_key = str(ctx["discriminator"]).strip("'")
        key = f"{key}.{tag_key}" if key else tag_key
        if kind == "union_tag_not_found":
            return key, "required key is missing"
        return key, f"unknown {tag_key} {ctx['tag']!r} (expected one of: {ctx['expected_tags']})"
    if kind == "string_pattern_mismatch" and key in _PATTERNS:
        got = str(error["input"])
        got = got if len(got) <= 60 else got[:57] + "..."
        return key, f"{_PATTERNS[key]} (got {got!r})"
    message = _FRIENDLY.get(kind, error["msg"])
    return key, message.removeprefix("Value error, ")


# What the schema's patterns ask for, in words: its regular expression says it to few.
_NAME_RULE = "must be letters, digits, '.', '_' and '-', starting with a letter or digit"
_PATTERNS = {
    "name": _NAME_RULE,
    "register": _NAME_RULE,
}

# Pydantic reports a value that fits none of `Scalar`'s members once per member, each
# with the member's name as a key (`choices[0].str`, `.int`, `.float`, `.bool`).
_SCALAR_MEMBERS = {
    "str": "string_type",
    "int": "int_type",
    "float": "float_type",
    "bool": "bool_type",
}
_NOT_A_SCALAR = "must be a string, a number or true/false"


def _described(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    return "a mapping" if isinstance(value, dict) else type(value).__name__


def _scalars_as_one(errors: list[Any]) -> list[Any]:
    """Pydantic's errors with each value that is no `Scalar` as one error at its own key."""
    merged: list[Any] = []
    for error in errors:
        loc = tuple(error["loc"])
        if not loc or _SCALAR_MEMBERS.get(str(loc[-1])) != error["type"]:
            merged.append(error)
        elif not merged or tuple(merged[-1]["loc"]) != loc[:-1]:
            merged.append({**error, "loc": loc[:-1], "type": "not_a_scalar", "msg": _NOT_A_SCALAR})
    return merged


def parse_spec(raw: Any, file: str | Path | None = None) -> SweepSpec:
    """Validate already-parsed YAML; raise SpecError with the first problem found."""
    if not isinstance(raw, dict):
        raise SpecError(file, "", "a sweep file must be a YAML mapping of keys to values")
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as exc:
        errors = _scalars_as_one(exc.errors())
        first = errors[0]
        key, problem = _problem(first, raw)
        if len(errors) > 1:
            problem += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        raise SpecError(file, key, problem) from None
    return spec


def read_spec(path: str | Path) -> SweepSpec:
    """Read, parse and validate a sweep file against the schema; SpecError on any failure,
    in bounded time and memory whatever the file holds."""
    path = Path(path)
    text = _read_text(path)
    try:
        raw = yaml.load(text, Loader=SweepFileLoader)
    except KeyedYAMLError as exc:  # a key written twice, `[on, off]`
        raise SpecError(path, exc.key, exc.problem) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if isinstance(exc, yaml.constructor.ConstructorError):  # well formed, not readable
            raise SpecError(path, "", f"YAML value at {where}{reason}") from None
        raise SpecError(path, "", f"YAML syntax error at {where}{reason}") from None
    except RecursionError:
        raise SpecError(path, "", "nested too deeply to be a sweep file") from None
    check_size(raw, path)
    return parse_spec(raw, path)


def _read_text(path: Path) -> str:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SpecError(path, "", "file not found") from None
    except OSError as exc:
        raise SpecError(path, "", f"cannot read: {exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise SpecError(path, "", "is a directory, expected a sweep file")
    # A FIFO would block the read forever, a device such as /dev/zero never end it.
    if not stat.S_ISREG(info.st_mode):
        raise SpecError(path, "", "is not a regular file, expected a sweep file")
    if info.st_size > MAX_FILE_BYTES:
        raise SpecError(
            path, "", f"is {info.st_size:,} bytes; a sweep file is at most {MAX_FILE_BYTES:,}"
        )
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
        text = data.decode("utf-8-sig")  # a byte-order mark, as some editors write, is fine
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(path, "", f"cannot read: {exc}") from None
    if len(data) > MAX_FILE_BYTES:  # it grew after stat()
        raise SpecError(path, "", f"is over {MAX_FILE_BYTES:,} bytes, the most a sweep file may be")
    return text


def with_budget(spec: SweepSpec, changes: dict[str, Any]) -> SweepSpec:
    """`spec` with its budget's limits changed (`tuner resume --budget`); SpecError if the
    result is not a valid sweep."""
    if "max_trials" in changes:
        raise SpecError(
            None,
            "budget.max_trials",
            "cannot change when a sweep resumes (its searcher saved how many trials it "
            "makes); start a new sweep",
        )
    current = spec.budget.model_dump(exclude_none=True) if spec.budget else {}
    raw = spec.model_dump(mode="json", exclude_defaults=True)
    return parse_spec({**raw, "budget": {**current, **changes}})
