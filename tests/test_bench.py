"""The benchmarks' smoke modes keep working. Their figures are measurements, reported in
bench/README.md, never asserted here: timed tests flake, benchmarks measure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import overhead, scale

pytestmark = pytest.mark.bench


def test_overhead_benchmark_runs_every_system(tmp_path: Path) -> None:
    result = json.loads(overhead.main(["--smoke", "--out", str(tmp_path)]).read_text())
    assert set(result["wall_s"]) == {
        "optuna (serial)",
        "optuna (2 workers)",
        "ray tune (defaults)",
        "ray tune (reuse_actors)",
        "tuner",
    }
    assert len(result["per_trial_compute_s"]) == result["trials"] == 4
    assert result["ideal_s"] > 0 and all(v > 0 for v in result["wall_s"].values())
    assert set(result["ray_startup_s"]) == {
        "ray tune (defaults)",
        "ray tune (reuse_actors)",
        "tuner",
    }
    assert (tmp_path / "overhead-smoke.md").read_text().startswith("| system | wall s |")


def test_scale_benchmark_reports_rate_overhead_and_memory(tmp_path: Path) -> None:
    result = json.loads(scale.main(["--smoke", "--out", str(tmp_path)]).read_text())
    assert result["trials"] == 40
    for system in ("tuner", "ray tune (reuse_actors)"):
        assert result["wall_s"][system] > 0
        assert result["driver_rss"][system]["end_mb"] > 0
