"""The best trial `tuner status` shows (from the counts its driver keeps on the sweep's
run) is the sweep's best, the one `tuner best` names: a trial that failed after scoring
well, or whose metric went infinite, is not best, whatever its last value."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import run_cli
from tuner.defaults import SUBMISSION_ID_ENV
from tuner.tracking.runs import find_sweep_run
from tuner.tracking.status import counts_from_runs, trial_counts
from tuner.tracking.tally import SweepTally

SPEC = {
    "name": "status-best",
    "trainable": "tests.trainables:scores_then_fails",
    "metric": "score",
    "mode": "max",
    "searcher": {"kind": "grid"},
    "fail_fast_after": None,
    # x = 0.9 scores 8.1 in its first epoch, then fails; x = 0.5 ends at 1.0.
    "params": {"x": {"type": "grid", "values": [0.9, 0.5, 0.2]}},
    "config": {"epochs": 2},
}


def test_a_failed_or_infinite_value_is_never_the_best_so_far() -> None:
    tally = SweepTally("loss", "min")
    tally.running("failed")
    tally.value("failed", 0.01)
    tally.ended("failed", "failed", {}, 0.0)
    tally.running("overflowed")
    tally.value("overflowed", float("-inf"))
    tally.running("good")
    tally.value("good", 0.2)
    assert (tally.summary()["best_trial"], tally.summary()["best_value"]) == ("good", 0.2)


@pytest.mark.e2e
def test_status_shows_the_same_best_trial_as_tuner_best(tmp_path: Path) -> None:
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(SPEC))
    done = run_cli("run", "sweep.yaml", cwd=tmp_path, env={SUBMISSION_ID_ENV: "raysubmit_b"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 failed" in done.stdout

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    found = find_sweep_run(client, "status-best", "tuner.submission_id", "raysubmit_b")
    assert found is not None
    experiment_id, parent = found
    best_trial = parent.data.tags["tuner.best_trial_id"]
    status = trial_counts(uri, "status-best", "raysubmit_b", job_ended=True)
    assert status is not None
    assert status.best_trial == best_trial and status.best_value == pytest.approx(1.0)
    from_runs = counts_from_runs(client, experiment_id, parent, job_ended=True)
    assert from_runs.best_trial == best_trial and from_runs.best_value == pytest.approx(1.0)
