"""`--json` on an error: stdout held nothing, so a script's `json.loads(stdout)` failed
on the one case it most needed to read. Now stdout holds the error as JSON; stderr keeps
its one `error:` line and the exit status is the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.e2e


def _json_error(args: list[str], cwd: Path, code: int) -> str:
    done = run_cli(*args, cwd=cwd, timeout=120)
    assert done.returncode == code, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert json.loads(done.stdout) == {"error": line.removeprefix("error: "), "exit_status": code}
    without = run_cli(*[a for a in args if a != "--json"], cwd=cwd, timeout=120)
    assert (without.returncode, without.stdout) == (code, "")  # as before without --json
    return line


def test_best_json_of_a_sweep_nowhere_prints_the_error_as_json(tmp_path: Path) -> None:
    line = _json_error(["best", "nosuch", "--json"], tmp_path, 1)
    assert "no MLflow store" in line


def test_best_json_of_an_invalid_sweep_file_prints_its_line_as_json(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: bad\nnum_samples: [1\n")
    line = _json_error(["best", "bad.yaml", "--json"], tmp_path, 2)
    assert line.startswith("error: bad.yaml: YAML syntax error at line")


def test_status_json_of_an_unreachable_cluster_prints_the_error_as_json(tmp_path: Path) -> None:
    line = _json_error(["status", "--address", "http://127.0.0.1:9", "--json"], tmp_path, 1)
    assert "cannot reach the Ray Jobs API at http://127.0.0.1:9" in line
