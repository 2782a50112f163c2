"""The documentation cannot drift from the code it describes.

- docs/sweep-file.md documents every key of `tuner.spec.SweepSpec`, with its default,
  and no key the schema lacks; docs/trainer-knobs.md does the same for the built-in
  trainers' knobs.
- Every relative link (and its #anchor) in README.md and docs/*.md resolves.
- The README keeps its set-up commands and links every page of docs/.
- Every sweep file shown in the docs is valid.

The convention the checks read: a key is documented as a row of a markdown table whose
first header cell is `key` (sweep file) or `knob` (trainer knobs), with the key as a
single code span in the first cell, e.g. ``| `scheduler.max_t` | ... |``. Keys are
paths from the top of the sweep file: `<name>` stands for any key of a mapping
(`params.<name>.low`) and `[]` for any item of a list. The keys of one member of a
tagged union (`searcher: {kind: optuna, ...}`) go in a table under a heading that holds
the tag as a code span, e.g. ``### `kind: optuna` ``. A column headed `default` starts
with "required" or with the default as YAML in a code span.

Fast on purpose: tuner.spec and tuner.trainer.knobs import neither Ray nor torch.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from tuner.spec import SweepSpec
from tuner.trainer.knobs import ClassifierKnobs, RegressorKnobs

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = REPO / "docs"
SWEEP_DOC = DOCS / "sweep-file.md"
KNOBS_DOC = DOCS / "trainer-knobs.md"
TRAINERS: dict[str, type[BaseModel]] = {
    "classifier": ClassifierKnobs,
    "regressor": RegressorKnobs,
}
MAP_KEY = "<name>"  # any key of a mapping, in a documented key path
LIST_ITEM = "[]"  # any item of a list


def rel(path: Path) -> str:
    """A path as the failure messages show it: relative to the repository when inside it."""
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


# --- the schema's keys ------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """A documented key: its path, and the union member it belongs to ("kind: optuna")."""

    path: str
    tag: str | None = None

    def __str__(self) -> str:
        return f"`{self.path}`" + (f" (under `{self.tag}`)" if self.tag else "")

    def order(self) -> tuple[str, str]:
        return self.path, self.tag or ""


@dataclass
class Schema:
    keys: dict[Key, FieldInfo | None]  # None: a mapping's entry, which has no field
    tags: set[str]  # every union member's tag, e.g. "kind: optuna"


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def holds_model(annotation: Any) -> bool:
    """Whether a type mentions a pydantic model anywhere (so it has keys of its own)."""
    return is_model(annotation) or any(holds_model(arg) for arg in get_args(annotation))


def single_literal(annotation: Any) -> Any:
    """The value of `Literal["x"]`, or None for any other type."""
    if get_origin(annotation) is Literal and len(get_args(annotation)) == 1:
        return get_args(annotation)[0]
    return None


def tag_field(members: Sequence[type[BaseModel]], discriminator: Any) -> str | None:
    """The field that tells a union's models apart: pydantic's discriminator if it names
    one, else a field every member has as a one-value Literal."""
    if isinstance(discriminator, str):
        return discriminator
    first = members[0].model_fields
    for name in first:
        if all(
            name in m.model_fields and single_literal(m.model_fields[name].annotation) is not None
            for m in members
        ):
            return name
    return None


def schema_of(model: type[BaseModel]) -> Schema:
    """Every key a YAML file may hold for `model`, walked recursively.

    Uses only pydantic's public model description (model_fields, annotations), never
    the module that defines the schema, so it follows the schema wherever it lives.
    """
    schema = Schema(keys={}, tags=set())
    _walk_model(model, "", None, None, schema)
    return schema


def _walk_model(
    model: type[BaseModel], prefix: str, tag: str | None, skip: str | None, schema: Schema
) -> None:
    for name, field in model.model_fields.items():
        if name == skip:
            continue  # a union's tag: documented once, with the union
        path = f"{prefix}{field.alias or name}"  # the key as YAML writes it (`from`)
        schema.keys[Key(path, tag)] = field
        _walk_type(field.annotation, path, tag, field.discriminator, schema)


def _walk_type(
    annotation: Any, path: str, tag: str | None, discriminator: Any, schema: Schema
) -> None:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        for meta in args[1:]:
            discriminator = discriminator or getattr(meta, "discriminator", None)
        _walk_type(args[0], path, tag, discriminator, schema)
    elif origin in (Union, types.UnionType):
        members = [a for a in args if holds_model(a)]
        models = [a for a in members if is_model(a)]
        if len(models) < 2:  # Optional[Model], or containers of models
            for member in members:
                _walk_type(member, path, tag, discriminator, schema)
            return
        field_name = tag_field(models, discriminator)
        if field_name is None:  # untagged: the members' keys merge
            for member in models:
                _walk_model(member, f"{path}.", tag, None, schema)
            return
        schema.keys[Key(f"{path}.{field_name}", tag)] = models[0].model_fields[field_name]
        for member in models:
            value = single_literal(member.model_fields[field_name].annotation)
            member_tag = f"{field_name}: {value}"
            schema.tags.add(member_tag)
            _walk_model(member, f"{path}.", member_tag, field_name, schema)
    elif origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        if holds_model(args[-1]):
            entry = f"{path}.{MAP_KEY}"
            schema.keys[Key(entry, tag)] = None
            _walk_type(args[-1], entry, tag, None, schema)
    elif origin is not None and isinstance(origin, type) and issubclass(origin, Sequence):
        if args and holds_model(args[0]):
            _walk_type(args[0], f"{path}{LIST_ITEM}", tag, None, schema)
    elif is_model(annotation):
        _walk_model(annotation, f"{path}.", tag, None, schema)


# --- the docs' key tables ---------------------------------------------------------------

CODE_SPAN = re.compile(r"`([^`]+)`")
TAG_SPAN = re.compile(r"`(\w+: [^`\s]+)`")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
SEPARATOR = re.compile(r"^\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?$")


@dataclass(frozen=True)
class Row:
    key: Key
    cells: dict[str, str]  # header -> cell text
    line: int
    heading: str  # the heading the row's table sits under

    def where(self, doc: Path) -> str:
        return f"{rel(doc)}:{self.line} (under '{self.heading}')"


def prose_lines(text: str) -> list[str]:
    """The file's lines with fenced code blocks blanked, so line numbers stay true."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else line)
    return lines


def split_cells(line: str) -> list[str]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", body)]


def key_rows(doc: Path, first_header: str) -> list[Row]:
    """Rows of every table whose first header cell is `first_header`, with the union tag
    of the nearest heading above that has one."""
    rows: list[Row] = []
    headings: list[tuple[int, str, str | None]] = []  # (level, text, tag)
    header: list[str] | None = None
    previous = ""
    for number, line in enumerate(prose_lines(doc.read_text(encoding="utf-8")), start=1):
        if match := HEADING.match(line):
            level, text = len(match.group(1)), match.group(2)
            headings = [h for h in headings if h[0] < level]
            tag = TAG_SPAN.search(text)
            headings.append((level, text, tag.group(1) if tag else None))
        if not line.lstrip().startswith("|"):
            header, previous = None, line
            continue
        if SEPARATOR.match(line.strip()):
            cells = [c.lower() for c in split_cells(previous)]
            header = cells if cells and cells[0] == first_header else None
        elif header is not None:
            cells = split_cells(line)
            key = re.fullmatch(r"`([^`]+)`", cells[0])
            assert key, (
                f"{rel(doc)}:{number}: the first cell of a '{first_header}' table must be one "
                f"code span naming the key, got {cells[0]!r}"
            )
            section_tag = next((h[2] for h in reversed(headings) if h[2]), None)
            rows.append(
                Row(
                    key=Key(key.group(1), section_tag),
                    cells=dict(zip(header, cells, strict=False)),
                    line=number,
                    heading=headings[-1][1] if headings else "(top)",
                )
            )
        previous = line
    return rows


def by_key(doc: Path, rows: list[Row]) -> dict[Key, Row]:
    seen: dict[Key, Row] = {}
    for row in rows:
        assert row.key not in seen, (
            f"{row.where(doc)} documents {row.key} again; it is already at "
            f"{seen[row.key].where(doc)}: keep one row"
        )
        seen[row.key] = row
    return seen


def heading_tags(doc: Path) -> set[str]:
    tags: set[str] = set()
    for line in prose_lines(doc.read_text(encoding="utf-8")):
        if (match := HEADING.match(line)) and (tag := TAG_SPAN.search(match.group(2))):
            tags.add(tag.group(1))
    return tags


def default_problem(doc: Path, row: Row, fields: Sequence[FieldInfo]) -> str | None:
    """How the row's default cell disagrees with the schema, if it does.

    The cell says "required", or starts with the default as YAML in a code span; when
    the trainers' defaults differ, it holds one code span for each.
    """
    cell = row.cells.get("default")
    if cell is None:
        return f"{row.where(doc)}: the table needs a 'default' column"
    if all(f.is_required() for f in fields):
        if cell.lower().startswith("required"):
            return None
        return (
            f"{row.where(doc)}: {row.key} is required by the schema; its default cell "
            f"should say 'required', not {cell!r}"
        )
    defaults = [_default(f) for f in fields]
    spans = CODE_SPAN.findall(cell)
    distinct = [d for i, d in enumerate(defaults) if d not in defaults[:i]]
    candidates = spans[:1] if len(distinct) == 1 else spans
    for field, default in zip(fields, defaults, strict=True):
        if not any(_same(span, field, default) for span in candidates):
            return (
                f"{row.where(doc)}: {row.key} defaults to `{_as_yaml(default)}` in the "
                f"schema, but the doc's default cell says {cell!r}"
            )
    return None


def _default(field: FieldInfo) -> Any:
    return field.get_default(call_default_factory=True)


def _as_yaml(value: Any) -> str:
    """A default as a user would write it in the sweep file."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_none=True)
    return str(yaml.safe_dump(value, default_flow_style=True)).strip().removesuffix("\n...")


def _same(span: str, field: FieldInfo, default: Any) -> bool:
    assert field.annotation is not None, f"a schema field without an annotation: {field}"
    try:
        value = TypeAdapter(field.annotation).validate_python(yaml.safe_load(span))
    except (yaml.YAMLError, ValidationError):
        return False
    return bool(value == default)


# --- the sweep-file reference -------------------------------------------------------------


def test_every_schema_key_is_documented_and_every_documented_key_exists() -> None:
    schema = schema_of(SweepSpec)
    documented = by_key(SWEEP_DOC, key_rows(SWEEP_DOC, "key"))
    missing = [key for key in sorted(schema.keys, key=Key.order) if key not in documented]
    stale = [row for key, row in documented.items() if key not in schema.keys]
    problems = [
        f"{key} is in the schema (tuner.spec.SweepSpec) but not in {rel(SWEEP_DOC)}: add a "
        f"row | `{key.path}` | type | default | rule | to a 'key' table"
        + (f" under the heading ### `{key.tag}`" if key.tag else "")
        for key in missing
    ] + [
        f"{row.where(SWEEP_DOC)} documents {row.key}, which tuner.spec.SweepSpec does not "
        "have: remove the row, or fix its name or the heading it sits under"
        for row in stale
    ]
    assert not problems, "\n".join(problems)


def test_every_searcher_scheduler_and_param_type_has_its_heading() -> None:
    schema_tags = schema_of(SweepSpec).tags
    doc_tags = heading_tags(SWEEP_DOC)
    problems = [
        f"{rel(SWEEP_DOC)} has no heading for `{tag}`: add one (e.g. ### `{tag}`) that says "
        "what it does and holds the table of its keys"
        for tag in sorted(schema_tags - doc_tags)
    ] + [
        f"{rel(SWEEP_DOC)} has a heading for `{tag}`, which the schema does not have"
        for tag in sorted(doc_tags - schema_tags)
    ]
    assert not problems, "\n".join(problems)


def test_documented_defaults_are_the_schema_defaults() -> None:
    schema = schema_of(SweepSpec)
    problems = [
        default_problem(SWEEP_DOC, row, [field])
        for key, row in by_key(SWEEP_DOC, key_rows(SWEEP_DOC, "key")).items()
        if (field := schema.keys.get(key)) is not None  # None: stale, or a mapping's entry
    ]
    assert not any(problems), "\n".join(p for p in problems if p)


# --- the trainer knobs ----------------------------------------------------------------------


def knob_fields() -> dict[str, dict[str, FieldInfo]]:
    """knob -> trainer -> its field."""
    knobs: dict[str, dict[str, FieldInfo]] = {}
    for trainer, model in TRAINERS.items():
        for name, field in model.model_fields.items():
            knobs.setdefault(name, {})[trainer] = field
    return knobs


def test_every_knob_is_documented_and_every_documented_knob_exists() -> None:
    knobs = knob_fields()
    documented = by_key(KNOBS_DOC, key_rows(KNOBS_DOC, "knob"))
    names = {key.path for key in documented}
    problems = [
        f"knob `{name}` ({', '.join(knobs[name])}) is not in {rel(KNOBS_DOC)}: add a row "
        f"| `{name}` | trainers | type | default | values and rule | to a 'knob' table"
        for name in sorted(set(knobs) - names)
    ] + [
        f"{row.where(KNOBS_DOC)} documents knob `{key.path}`, which neither ClassifierKnobs "
        "nor RegressorKnobs has: remove the row or fix its name"
        for key, row in documented.items()
        if key.path not in knobs
    ]
    assert not problems, "\n".join(problems)


def test_documented_knobs_name_their_trainers_and_defaults() -> None:
    knobs = knob_fields()
    words = {"both": set(TRAINERS), **{name: {name} for name in TRAINERS}}
    problems: list[str | None] = []
    for key, row in by_key(KNOBS_DOC, key_rows(KNOBS_DOC, "knob")).items():
        trainers = knobs.get(key.path)
        if trainers is None:
            continue  # reported by the test above
        cell = row.cells.get("trainers", "").lower()
        if words.get(cell) != set(trainers):
            expected = "both" if set(trainers) == set(TRAINERS) else next(iter(trainers))
            problems.append(
                f"{row.where(KNOBS_DOC)}: knob `{key.path}` belongs to "
                f"{' and '.join(sorted(trainers))}; its trainers cell should say "
                f"{expected!r}, not {cell!r}"
            )
        problems.append(default_problem(KNOBS_DOC, row, list(trainers.values())))
    assert not any(problems), "\n".join(p for p in problems if p)


# --- links ----------------------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def doc_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def links(doc: Path) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(prose_lines(doc.read_text(encoding="utf-8")), start=1):
        for target in LINK.findall(CODE_SPAN.sub("code", line)):
            yield number, target


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    for line in prose_lines(doc.read_text(encoding="utf-8")):
        if match := HEADING.match(line):
            base = slug(match.group(2))
            n = counts.get(base, 0)
            counts[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: rel(p))
def test_relative_links_resolve(doc: Path) -> None:
    problems = []
    for number, target in links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path_part, _, fragment = target.partition("#")
        destination = (doc.parent / path_part).resolve() if path_part else doc
        if not destination.exists():
            problems.append(f"{rel(doc)}:{number}: link to {target!r}: no such file")
        elif fragment and destination.suffix == ".md" and fragment not in anchors(destination):
            problems.append(
                f"{rel(doc)}:{number}: link to {target!r}: "
                f"{rel(destination)} has no heading with anchor #{fragment}"
            )
    assert not problems, "\n".join(problems)


# --- the README -----------------------------------------------------------------------------


def section(text: str, title: str) -> str:
    """The text of the `## title` section, up to the next heading of level 2 or above."""
    match = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^#{{1,2}} |\Z)", text, re.M | re.S)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


def bash_lines(text: str) -> list[str]:
    blocks = re.findall(r"^```(?:bash|sh|shell)\s*$(.*?)^```", text, re.M | re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_keeps_its_set_up_commands() -> None:
    commands = bash_lines(section(README.read_text(encoding="utf-8"), "Set-up"))
    sweeps = [
        match.group(1)
        for line in commands
        if (match := re.search(r"\btuner run (\S+\.ya?ml)\b", line))
    ]
    assert sweeps, "README.md's Set-up section must have a command that runs a real sweep"
    for sweep in sweeps:
        assert (REPO / sweep).is_file(), f"README.md's set-up sweep {sweep} does not exist"
    assert any("python -m pytest" in line for line in commands), (
        "README.md's Set-up section must have the test command (`python -m pytest`): "
        "CI runs the command the README gives"
    )


def test_readme_links_every_doc() -> None:
    linked = {(README.parent / target.partition("#")[0]).resolve() for _, target in links(README)}
    unlinked = [rel(doc) for doc in sorted(DOCS.glob("*.md")) if doc.resolve() not in linked]
    assert not unlinked, f"README.md's Documentation list should link: {', '.join(unlinked)}"


# --- examples -------------------------------------------------------------------------------


def yaml_blocks(doc: Path) -> Iterator[tuple[int, str]]:
    text = doc.read_text(encoding="utf-8")
    for match in re.finditer(r"^```ya?ml\s*$(.*?)^```", text, re.M | re.S):
        yield text[: match.start()].count("\n") + 1, match.group(1)


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: rel(p))
def test_sweep_files_shown_in_the_docs_are_valid(doc: Path) -> None:
    for line, block in yaml_blocks(doc):
        raw = yaml.safe_load(block)
        if isinstance(raw, dict) and "trainable" in raw:
            try:
                SweepSpec.model_validate(raw)
            except ValidationError as exc:
                pytest.fail(f"{rel(doc)}:{line}: the example sweep file is invalid:\n{exc}")


def test_the_walk_finds_nested_and_tagged_keys() -> None:
    """Guards the helper itself: a walk that found nothing would make the tests above pass."""
    keys = schema_of(SweepSpec).keys
    for path, tag in [
        ("name", None),
        ("searcher.kind", None),
        ("searcher.sampler", "kind: optuna"),
        ("scheduler.max_t", "kind: asha"),
        ("resources_per_trial.gpu", None),
        (f"params.{MAP_KEY}.low", "type: float"),
        (f"params.{MAP_KEY}.choices", "type: categorical"),
    ]:
        assert Key(path, tag) in keys, f"the schema walk lost {Key(path, tag)}"
