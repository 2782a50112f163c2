"""A job's output made safe for the terminal that `tuner logs` prints it to.

The driver's log holds whatever a trial printed. Terminal control sequences in it act on
the user's terminal, not just show: set its title, clear the screen, rewrite the
clipboard (OSC 52), hide lines. Colours (SGR, `ESC [ ... m`) are kept; every other escape
sequence and control character except tab, newline and carriage return is dropped. A
lone ESC is dropped too, so a sequence cut in two by `--follow`'s chunks cannot form.
"""

from __future__ import annotations

import re

_COLOUR = r"\x1b\[[0-9;]*m"
_SEQUENCES = re.compile(
    r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: title, clipboard, hyperlinks
    r"|\x1b[P^_X][^\x1b]*\x1b\\"  # DCS, PM, APC, SOS strings
    r"|\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: cursor moves, clearing, modes (colours kept below)
    r"|\x1b[ -/]*[0-~]"  # two-character escapes
    r"|\x1b"  # a lone ESC, or one whose sequence is cut off
    r"|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f]"  # other C0 and C1 controls, DEL
)


def printable(text: str) -> str:
    """`text` with colours kept and every other control sequence removed."""
    return _SEQUENCES.sub(lambda m: m[0] if re.fullmatch(_COLOUR, m[0]) else "", text)
