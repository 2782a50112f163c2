"""The checkpoints benchmark's S3 systems keep working: moto's S3 server in its own process.
Not in test_bench.py, whose systems share one Ray: a trial reaches moto only through the
endpoint in its Ray's environment, so each S3 system needs a Ray started after moto."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import checkpoints

pytestmark = pytest.mark.bench


def test_checkpoints_benchmark_runs_each_policy_on_s3_too(tmp_path: Path) -> None:
    result = json.loads(checkpoints.main(["--smoke", "--s3", "--out", str(tmp_path)]).read_text())
    on_s3 = {f"{name}, S3 (moto)" for name in checkpoints.POLICIES}
    assert on_s3 <= set(result["wall_s"])
    assert all(result["wall_s"][name] > 0 for name in on_s3)
    assert "S3 (moto)" in (tmp_path / "checkpoints-smoke-s3.md").read_text()
