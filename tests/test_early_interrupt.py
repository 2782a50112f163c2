"""A Ctrl-C as `tuner run` starts, while it still imports its commands, Ray or MLflow:
one line and exit 130, wherever it lands.

Python printed a KeyboardInterrupt traceback through the import it landed in and died
by SIGINT; a little later typer turned it into a silent exit 130.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import cli_env, write_slow_sweep

pytestmark = pytest.mark.e2e

# The console script pip installs: the entry point a user's `tuner` runs.
TUNER_SCRIPT = Path(sys.executable).parent / "tuner"


def _as_a_terminal_starts_it() -> None:
    """Ctrl-C at its default in the child: a shell runs a background job (a CI runner's
    `cmd &`) with SIGINT ignored, and an ignored SIGINT is inherited, so Python would
    never raise KeyboardInterrupt in it, where a user's terminal gives the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("after_s", [0.4, 1.5, 3.0])
def test_a_ctrl_c_as_it_starts_says_interrupted_in_one_line(tmp_path: Path, after_s: float) -> None:
    write_slow_sweep(tmp_path, "early")
    process = subprocess.Popen(
        [str(TUNER_SCRIPT), "run", "sweep.yaml"], cwd=tmp_path, env=cli_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_as_a_terminal_starts_it,
    )  # fmt: skip
    time.sleep(after_s)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    (line,) = stderr.strip().splitlines()
    assert line.startswith("error: interrupted"), line
