"""The one-line error every invalid sweep file gets: the file, the key path, the problem."""

from __future__ import annotations

from pathlib import Path

import yaml


class SpecError(Exception):
    """Invalid sweep file: knows the file, the key path and the problem, renders one line."""

    def __init__(self, file: str | Path | None, key: str, problem: str) -> None:
        self.file = str(file) if file is not None else None
        self.key = key
        self.problem = problem
        super().__init__(self.line())

    def line(self) -> str:
        parts = [p for p in (self.file, _cut(self.key, 200)) if p]
        return printable(": ".join([*parts, _cut(self.problem, 2000)]))


def _cut(text: str, most: int) -> str:
    """A key or problem of one line's length: a file may hold a 900 KB key (`? xxx...`),
    which the line once carried whole, twice."""
    return text if len(text) <= most else f"{text[: most - 20]}... ({len(text):,} characters)"


def printable(text: str) -> str:
    """One line a terminal shows as it is: control characters and line breaks a hostile
    file put in a key are escaped (a NUL as \\x00)."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


class KeyedProblem(ValueError):
    """Raised inside validators that know a more precise key path than pydantic's loc."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


class KeyedYAMLError(yaml.YAMLError):  # type: ignore[misc]
    """A file YAML reads, but not as its author meant: its key path and the problem."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key = key
        self.problem = problem
