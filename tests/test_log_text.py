"""`tuner logs` prints a job's output with its colours but without the control sequences
a trial's print could aim at the user's terminal (before, they were written as is)."""

from __future__ import annotations

import pytest

from tuner.cluster.log_text import printable


def test_colours_and_text_are_kept() -> None:
    text = "epoch 1\t\x1b[1;31mfailed\x1b[0m\r\nnext\n"
    assert printable(text) == text


@pytest.mark.parametrize(
    "sequence",
    [
        "\x1b]0;pwned\x07",  # window title
        "\x1b]52;c;ZWNobyBoaQ==\x1b\\",  # clipboard write
        "\x1b]8;;http://x\x1b\\",  # hyperlink
        "\x1b[2J",  # clear the screen
        "\x1b[1A\x1b[2K",  # up a line and erase it: hides the line before
        "\x1bP1$r\x1b\\",  # DCS request
        "\x1bc",  # reset the terminal
        "\x07\x08\x7f\x9b",  # bell, backspace, DEL, C1 CSI
    ],
)
def test_control_sequences_are_dropped(sequence: str) -> None:
    assert printable(f"a{sequence}b") == "ab"


def test_a_sequence_cut_between_two_chunks_cannot_form() -> None:
    first, second = printable("a\x1b]0;ti"), printable("tle\x07b")
    assert "\x1b" not in first + second
    assert "\x07" not in first + second
