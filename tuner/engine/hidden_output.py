"""A trial's printed output with the sweep's secret values taken out.

A trainable that prints its config (`print(config)`, the first line of many training
scripts) printed the token tuner had put back into it: onto the user's terminal, into
Ray's worker log on the node, and on a cluster into the job's log that `tuner logs`
shows. In the trial's process, its `sys.stdout` and `sys.stderr` take each secret out
of what is written through them, as its errors have them taken out (user_errors).

Python-level output only: print, sys.stdout/sys.stderr, and what is logged through
the root logger's handlers (Ray Train's workers may turn `print` into a root-logger
record, written to their own log file). What C code or a subprocess writes to the
file descriptors directly is not seen.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

SHOWN_INSTEAD = "<secret>"
# The secrets this process hides, longest first ("abcd1" before "abcd"), read by its
# streams and filters at each write: a worker runs trial after trial, and each one's
# join those of the trials before.
_hiding: tuple[str, ...] = ()


def hidden(text: str, secrets: Sequence[str]) -> str:
    """`text` with each of `secrets` (longest first) replaced by SHOWN_INSTEAD: what a
    trial prints, and its errors (user_errors)."""
    for secret in secrets:
        text = text.replace(secret, SHOWN_INSTEAD)
    return text


class _HidingFilter(logging.Filter):
    """A log record's message with the secrets taken out, before any handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        shown = hidden(message, _hiding)
        if shown != message:
            record.msg, record.args = shown, None
        return True


class _HidingStream:
    """A text stream that writes to `stream` with the secrets taken out; everything else
    (flush, fileno, encoding, isatty, buffer) is the stream's own."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(hidden(text, _hiding))
        return len(text)  # what the caller wrote, as a plain stream says

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def hide_in_output(secrets: Sequence[str]) -> None:
    """From now on in this process, `secrets` never reach its sys.stdout or sys.stderr.
    A worker runs trial after trial: each one's secrets join those already hidden."""
    global _hiding
    if not secrets:
        return
    _hiding = tuple(sorted({*_hiding, *secrets}, key=len, reverse=True))
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _HidingStream):
            setattr(sys, name, _HidingStream(stream))
    # On the root logger, for records logged there (Train's print); on its handlers, for
    # those that reach them from other loggers (a logger's own filters see only its own).
    root = logging.getLogger()
    for holder in [root, *root.handlers]:
        if not any(isinstance(f, _HidingFilter) for f in holder.filters):
            holder.addFilter(_HidingFilter())


def hidden_secrets() -> list[str]:
    """The secrets this process's output hides: what a trial hands its own workers (a
    multi-worker trial's Ray Train workers, which never see its TrialConfig)."""
    return list(_hiding)
