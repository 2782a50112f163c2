"""What user code reports and raises that MLflow or Ray take badly, run through the `tuner`
command: metric names MLflow refuses, exceptions Ray cannot copy or pickle, messages of
several lines. The same style as tests/test_user_code.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.test_user_code import trial_runs, write_sweep
from tuner.tracking.results import loggable_points

# --- metric names MLflow refuses --------------------------------------------------------

ODD_NAMES_CODE = """
    from ray import tune


    def fit(config):
        for epoch in range(1, 3):
            # torchmetrics-style names and a generated one MLflow will not take.
            tune.report({"epoch": epoch, "loss": config["x"] / epoch, "acc@1": 0.5,
                         "val/f1 macro": 0.25, "k" * 300: 1.0})
"""


def test_names_mlflow_refuses_are_left_out_once_each() -> None:
    refused: dict[str, str] = {}
    points = {"loss": 1.0, "acc@1": 0.5, "val/f1 macro": 0.25, "k" * 300: 1.0}
    assert loggable_points(points, refused) == {"loss": 1.0, "val/f1 macro": 0.25}
    assert sorted(refused) == ["acc@1", "k" * 300]
    assert "250 characters" in refused["k" * 300]
    assert loggable_points(points, refused) == {"loss": 1.0, "val/f1 macro": 0.25}


@pytest.mark.e2e
def test_a_metric_name_mlflow_refuses_loses_no_other_metric(tmp_path: Path) -> None:
    sweep = write_sweep(
        tmp_path,
        ODD_NAMES_CODE,
        metric="loss",
        mode="min",
        searcher={"kind": "grid"},
        params={"x": {"type": "grid", "values": [1.0, 2.0]}},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path)
    # It used to fail every log_batch of the trial: no metric in MLflow, exit status 1.
    assert out.returncode == 0, out.stderr
    assert "MLflow write failed" not in out.stderr
    warnings = [line for line in out.stderr.splitlines() if "is not logged to MLflow" in line]
    assert len(warnings) == 2, out.stderr  # one per name, not one per result or trial
    assert any("'acc@1'" in line for line in warnings)
    assert any("(300 characters)" in line for line in warnings)
    client, parent, trials = trial_runs(tmp_path)
    assert parent.info.status == "FINISHED"
    for run in trials:
        assert run.info.status == "FINISHED"
        assert {"loss", "val/f1 macro"} <= set(run.data.metrics)
        assert not {"acc@1", "k" * 300} & set(run.data.metrics)
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [m.step for m in history] == [1, 2]
    best = min(trials, key=lambda r: r.data.metrics["loss"])
    assert parent.data.tags["tuner.best_run_id"] == best.info.run_id
