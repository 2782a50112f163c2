"""The benchmarks' own arithmetic and argument checks, without running a benchmark:
these run in every test run (the smoke runs are `bench` tests, test_bench.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import gpu, search, search_conditional, search_multiobjective


def test_gpu_benchmark_refuses_an_unknown_part_before_it_measures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        gpu.main(["--smoke", "--parts", "shares,speed", "--out", str(tmp_path)])
    assert refused.value.code == 2
    assert "--parts: no speed; the parts are shares,command,epochs" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_half_the_dimensions_matter_only_on_one_branch() -> None:
    base = {"branch": "half", "x1": 0.2, "x2": 0.15, "x3": 0.48}
    assert search_conditional.point({**base, "x4": 0.1, "x5": 0.9, "x6": 0.0}) == (
        search_conditional.point(base)
    )
    full = {**base, "branch": "full", "x4": 0.1, "x5": 0.9, "x6": 0.0}
    assert search_conditional.point(full)[3:] == [0.1, 0.9, 0.0]


def test_hypervolume_of_a_front_by_hand() -> None:
    # Reference (0, 6): two points, (-2, 1) and (-1, 0.5); the second adds a strip.
    volume = search_multiobjective.hypervolume([(-2.0, 1.0), (-1.0, 0.5), (-0.5, 3.0)])
    assert volume == pytest.approx(2 * 5 + 1 * 0.5)


def test_hartmann_has_its_published_minimum() -> None:
    optimum = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]
    assert search.hartmann(optimum) == pytest.approx(search.F_STAR, abs=1e-4)
    # Lower fidelity shifts the value, by at most 0.1 (the first weight's shift).
    assert abs(search.hartmann(optimum, 0.0) - search.F_STAR) <= 0.1
