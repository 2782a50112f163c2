"""The one-line error every invalid sweep file gets: the file, the key path, the problem."""

from __future__ import annotations

from pathlib import Path


class SpecError(Exception):
    """Invalid sweep file: knows the file, the key path and the problem, renders one line."""

    def __init__(self, file: str | Path | None, key: str, problem: str) -> None:
        self.file = str(file) if file is not None else None
        self.key = key
        self.problem = problem
        super().__init__(self.line())

    def line(self) -> str:
        parts = [p for p in (self.file, self.key) if p]
        return _printable(": ".join([*parts, self.problem]))


def _printable(text: str) -> str:
    """One line a terminal shows as it is: control characters and line breaks a hostile
    file put in a key are escaped (a NUL as \\x00)."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


class KeyedProblem(ValueError):
    """Raised inside validators that know a more precise key path than pydantic's loc."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")
