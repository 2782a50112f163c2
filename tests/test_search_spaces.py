"""The shipped knob sweeps run to completion, as a user runs them (small num_samples).

The four run at once, each `tuner run` in its own folder with its own embedded Ray, as
a user may run several sweeps on one machine: most of each one's wall time is start-up
and finish, which overlap (33 s at once against 42 s one after another, on 2 cores).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import SEARCH_SPACES, TUNER, cli_env
from tuner import load_spec

pytestmark = pytest.mark.e2e

SWEEPS = [
    "digits_knobs_tpe_asha.yaml",
    "wine_csv_random.yaml",
    "diabetes_regressor_tpe.yaml",
    "digits_conditional_tpe.yaml",
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str, str, int]]:
    """Each sweep's (folder, stdout, stderr, exit status), all three run at the same time."""
    running = {}
    for sweep in SWEEPS:
        folder = tmp_path_factory.mktemp(sweep.removesuffix(".yaml"))
        shutil.copytree(SEARCH_SPACES, folder / "search_spaces")  # data_path is relative
        command = [*TUNER, "run", f"search_spaces/{sweep}", "--num-samples", "4"]
        running[sweep] = (folder, subprocess.Popen(
            command, cwd=folder, env=cli_env(), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        ))  # fmt: skip
    results = {}
    for sweep, (folder, process) in running.items():
        stdout, stderr = process.communicate(timeout=600)
        results[sweep] = (folder, stdout, stderr, process.returncode)
    return results


@pytest.mark.parametrize("sweep", SWEEPS)
def test_knob_sweep_runs_to_completion(
    sweep: str, finished: dict[str, tuple[Path, str, str, int]]
) -> None:
    tmp_path, stdout, stderr, returncode = finished[sweep]
    assert returncode == 0, stderr
    assert "best model on the test split (never seen by the search): test_" in stdout

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
