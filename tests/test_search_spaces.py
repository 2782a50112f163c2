"""The shipped knob sweeps run to completion, as a user runs them (small num_samples)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import SEARCH_SPACES, run_cli
from tuner import load_spec

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    "sweep", ["digits_knobs_tpe_asha.yaml", "wine_csv_random.yaml", "diabetes_regressor_tpe.yaml"]
)
def test_knob_sweep_runs_to_completion(sweep: str, tmp_path: Path) -> None:
    shutil.copytree(SEARCH_SPACES, tmp_path / "search_spaces")  # data_path is relative
    path = Path("search_spaces") / sweep
    out = run_cli("run", str(path), "--num-samples", "4", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "best model on the test split (never seen by the search): test_" in out.stdout

    spec = load_spec(SEARCH_SPACES / sweep)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(spec.name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("tuner.role") == "sweep")
    trials = [r for r in runs if r.data.tags.get("tuner.role") == "trial"]
    assert len(trials) == spec.with_num_samples(4).expected_trials()
    # The best model's test score, once, on the parent and on the best trial's run.
    test_metric = spec.metric.replace("val_", "test_")
    best = client.get_run(parent.data.tags["tuner.best_run_id"])
    assert best.data.metrics[test_metric] == parent.data.metrics[test_metric] > 0
    assert {"lr", "epoch_time_s"} <= set(best.data.metrics)
    if spec.trainable == "builtin:classifier":
        # A finished trial's last report carries the end-of-trial classification report.
        assert {"val_precision", "val_recall", "val_f1"} <= set(best.data.metrics)
    else:
        assert {"val_rmse", "val_r2"} <= set(best.data.metrics)
    assert {a.path for a in client.list_artifacts(best.info.run_id, "model")} >= {"model/MLmodel"}
