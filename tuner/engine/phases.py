"""Where a sweep's wall time goes: named phases and moments, timed as they happen.

`tuner run --profile` prints them; `SweepResult.phases` carries them for other callers.
Imports nothing heavy: the CLI starts its clock before Ray is imported.
Times are wall-clock seconds since the process started (imports included), so a table
of them adds up to what the user waited for.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


def process_start_time() -> float:
    """When this process started (epoch seconds): imports count as part of the wait."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            # Field 22 is the start time in clock ticks after boot; the command name in
            # field 2 may hold spaces, so count from the last ')'.
            ticks = int(stat.read().rpartition(")")[2].split()[19])
        with open("/proc/uptime", encoding="ascii") as uptime:
            booted = time.time() - float(uptime.read().split()[0])
        return booted + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):  # not Linux: count from the first phase
        return time.time()


@dataclass(frozen=True)
class Span:
    name: str
    start: float  # seconds since the process started
    seconds: float | None = None  # None: a moment, not a phase


@dataclass
class Phases:
    origin: float = field(default_factory=process_start_time)
    spans: list[Span] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.time()
        try:
            yield
        finally:
            self.spans.append(Span(name, started - self.origin, time.time() - started))

    def mark(self, name: str, at: float | None = None) -> None:
        """A moment, such as the first result of the first trial; `at`: when (epoch
        seconds), if not now."""
        self.spans.append(Span(name, (time.time() if at is None else at) - self.origin))

    def as_dict(self) -> dict[str, float]:
        """Each phase's duration, each moment's time since the process started."""
        return {
            span.name: span.start if span.seconds is None else span.seconds for span in self.spans
        }

    def table(self) -> list[tuple[str, str, str]]:
        """(phase, at s, took s) rows in the order they began."""
        rows = sorted(self.spans, key=lambda span: span.start)
        return [
            (span.name, f"{span.start:.2f}", "" if span.seconds is None else f"{span.seconds:.2f}")
            for span in rows
        ]
