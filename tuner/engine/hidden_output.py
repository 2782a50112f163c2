"""A trial's printed output with the sweep's secret values taken out.

A trainable that prints its config (`print(config)`, the first line of many training
scripts) printed the token tuner had put back into it: onto the user's terminal, into
Ray's worker log on the node, and on a cluster into the job's log that `tuner logs`
shows. In the trial's process, its `sys.stdout` and `sys.stderr` take each secret out
of what is written through them, as its errors have them taken out (user_errors).

Python-level writes only: print, sys.stdout/sys.stderr, and logging handlers made
after the trial started. What C code, a subprocess or a handler made before writes to
the file descriptors directly is not seen.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

SHOWN_INSTEAD = "<secret>"


class _HidingStream:
    """A text stream that writes to `stream` with the secrets taken out; everything else
    (flush, fileno, encoding, isatty, buffer) is the stream's own."""

    def __init__(self, stream: TextIO, secrets: set[str]) -> None:
        self._stream = stream
        self._secrets = secrets

    def write(self, text: str) -> int:
        shown = text
        for secret in sorted(self._secrets, key=len, reverse=True):  # "abcd1" before "abcd"
            shown = shown.replace(secret, SHOWN_INSTEAD)
        self._stream.write(shown)
        return len(text)  # what the caller wrote, as a plain stream says

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def hide_in_output(secrets: Sequence[str]) -> None:
    """From now on in this process, `secrets` never reach its sys.stdout or sys.stderr.
    A worker runs trial after trial: each one's secrets join those already hidden."""
    if not secrets:
        return
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if isinstance(stream, _HidingStream):
            stream._secrets.update(secrets)
        elif stream is not None:
            setattr(sys, name, _HidingStream(stream, set(secrets)))
