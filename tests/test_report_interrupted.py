"""`tuner report` on a sweep cut off by a Ctrl-C before any trial finished: its trials'
learning curves are drawn (they trained for epochs), and the page counts them as cut
off, in the words of the summary, not as failed."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from tests.conftest import run_and_signal, run_cli, write_slow_sweep

pytestmark = pytest.mark.e2e


def test_an_interrupted_sweeps_report_shows_its_curves_and_says_they_were_cut_off(
    tmp_path: Path,
) -> None:
    started = write_slow_sweep(tmp_path, "cut-report", num_samples=2, epochs=20)
    stopped = run_and_signal(tmp_path, started, signal.SIGINT, "run", "sweep.yaml")
    assert stopped.returncode == 130, stopped.stderr

    done = run_cli("report", "cut-report", "--out", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "not drawn: learning_curves" not in done.stdout
    curves = tmp_path / "out" / "learning_curves.png"
    assert curves.read_bytes().startswith(b"\x89PNG"), done.stdout
    assert "not drawn: optimization_history: no trial finished with a value of loss" in (
        done.stdout
    )
    page = (tmp_path / "out" / "report.html").read_text()
    counts = re.search(r"(\d+) trials:\n([^.]*)\.", page)
    assert counts is not None, page[:2000]
    assert re.fullmatch(r"\d cut off \(interrupted\)", counts.group(2)), counts.group(0)
    assert "fail" not in counts.group(2)
