"""`tuner best --json` gives each param as the trial had it: a float a number, an int an
int, a categorical choice its own value (true, not "True"), on the best trial and on the
Pareto front's. MLflow keeps params as strings; a script feeding them back into its
training used to get "0.25" for a learning rate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli

pytestmark = pytest.mark.e2e

SWEEP = {
    "name": "typed-best",
    "trainable": "tests.trainables:two_objectives",
    "objectives": [{"metric": "quality", "mode": "max"}, {"metric": "size", "mode": "min"}],
    "num_samples": 3,
    "searcher": {"kind": "random", "seed": 0},
    "params": {
        "x": {"type": "float", "low": 0.0, "high": 1.0},
        "y": {"type": "float", "low": 0.0, "high": 1.0},
        "width": {"type": "int", "low": 8, "high": 64},
        "shuffle": {"type": "categorical", "choices": [True, False]},
        "arch": {"type": "categorical", "choices": ["mlp", "cnn"]},
    },
    "config": {"epochs": 1},
}


def test_best_json_gives_params_their_own_types(tmp_path: Path) -> None:
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    done = run_cli("run", "sweep.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    best = run_cli("best", "typed-best", "--json", cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    report = json.loads(best.stdout)
    assert report["front"], "a sweep of two objectives has a front"
    for params in [report["params"], *(trial["params"] for trial in report["front"])]:
        assert set(params) == {"x", "y", "width", "shuffle", "arch"}
        assert isinstance(params["x"], float) and isinstance(params["y"], float)
        assert isinstance(params["width"], int) and not isinstance(params["width"], bool)
        assert params["shuffle"] in (True, False)
        assert params["arch"] in ("mlp", "cnn")

    text = run_cli("best", "typed-best", cwd=tmp_path)
    assert f"  width = {report['params']['width']}\n" in text.stdout
