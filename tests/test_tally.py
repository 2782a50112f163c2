"""The sweep's counts its driver keeps on the sweep's run, which `tuner status` reads.

Pure rules first (SweepTally), then a real sweep through the CLI whose final counts must
equal what paging in every trial's run gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import run_cli
from tuner.defaults import SUBMISSION_ID_ENV
from tuner.tracking.runs import find_sweep_run
from tuner.tracking.status import TrialCounts, counts_from_runs, trial_counts
from tuner.tracking.tally import TAG_TRIALS, SweepTally, TrialRecord, state_of


def test_counts_follow_each_trial_through_its_states() -> None:
    tally = SweepTally("score", "max")
    tally.running("a")
    tally.running("b", workers="2 workers x 1 CPU")
    tally.value("a", 0.5)
    tally.value("b", 0.9)
    tally.value("a", 0.7)  # a trial's latest value counts, as its run shows it
    tally.ended("a", "finished", {"cpu_hours": 0.25}, lost_work_s=0.0)
    tally.ended("b", state_of("KILLED", stopped_early=True), {"cpu_hours": 0.5}, 1.5)
    tally.running("c")
    summary = tally.summary()
    assert summary["trials"] == 3
    assert summary["by_state"] == {"finished": 1, "running": 1, "stopped_early": 1}
    assert (summary["best_value"], summary["best_trial"]) == (0.9, "b")
    assert summary["held"] == {"cpu_hours": 0.75}
    assert summary["lost_work_s"] == 1.5
    assert summary["workers"] == {"2 workers x 1 CPU": 1}
    assert summary["final"] is False


def test_min_mode_nan_and_a_reopened_run() -> None:
    tally = SweepTally("loss", "min")
    tally.seed("old", TrialRecord("killed", value=0.3, held={"cpu_hours": 1.0}))
    tally.running("new")
    tally.value("new", float("nan"))  # never the best
    assert (tally.summary()["best_value"], tally.summary()["best_trial"]) == (0.3, "old")
    tally.running("old")  # a resume runs it again in its run
    assert tally.summary()["by_state"] == {"running": 2}
    tally.ended("old", "finished", {"cpu_hours": 1.5, "gpu_hours": 0.0}, 0.0)
    assert tally.summary()["held"] == {"cpu_hours": 1.5, "gpu_hours": 0.0}, "replaced, not added"
    tally.value("new", 0.1)
    assert tally.summary()["best_trial"] == "new"


def test_writes_are_paced_and_only_after_a_change() -> None:
    tally = SweepTally("score", "max", period_s=2.0)
    assert not tally.due(now=0.0), "nothing to say yet"
    tally.running("a")
    assert tally.due(now=0.0)
    written = json.loads(tally.tag(now=0.0)[TAG_TRIALS])
    assert written["by_state"] == {"running": 1}
    tally.value("a", 1.0)
    assert not tally.due(now=1.9)
    assert tally.due(now=2.0)
    tally.tag(now=2.0)
    assert not tally.due(now=10.0), "no change since the last write"
    assert json.loads(tally.tag(final=True, now=10.0)[TAG_TRIALS])["final"] is True


def test_state_of_matches_the_status_rules() -> None:
    assert state_of("KILLED", stopped_early=True) == "stopped_early"
    assert state_of("KILLED", stopped_early=False) == "killed"
    assert state_of("FINISHED", stopped_early=True) == "finished"
    assert state_of("FAILED", stopped_early=False) == "failed"


SPEC = {
    "name": "tallied",
    "trainable": "tests.trainables:scored_or_failing",
    "metric": "score",
    "mode": "max",
    "searcher": {"kind": "grid"},
    "scheduler": {"kind": "asha", "max_t": 9, "grace_period": 1, "reduction_factor": 3},
    "max_concurrent_trials": 2,
    "fail_fast_after": None,
    # Worse and worse after the first: ASHA stops some; a negative x fails.
    "params": {"x": {"type": "grid", "values": [-1.0, 0.5, 0.4, 0.3, 0.2, 0.1]}},
    "config": {"epochs": 9},
}
SUBMITTED = {SUBMISSION_ID_ENV: "raysubmit_t"}  # as `tuner submit` gives its driver


def both_counts(tmp_path: Path) -> tuple[TrialCounts, TrialCounts]:
    """What `tuner status` reads for the sweep's ended job, and the counts of its runs."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    found = find_sweep_run(client, "tallied", "tuner.submission_id", "raysubmit_t")
    assert found is not None
    experiment_id, parent = found
    assert json.loads(parent.data.tags[TAG_TRIALS])["final"] is True
    from_tally = trial_counts(uri, "tallied", "raysubmit_t", job_ended=True)
    assert from_tally is not None
    from_runs = counts_from_runs(client, experiment_id, parent, job_ended=True)
    # The same sums, added in another order; the runs' tags keep seconds to 0.1 s.
    assert from_tally.held == pytest.approx(from_runs.held)
    assert from_tally.lost_work_s == pytest.approx(from_runs.lost_work_s, abs=0.05 * 6)
    sums = {"held": None, "lost_work_s": None}
    assert {**from_tally.as_dict(), **sums} == {**from_runs.as_dict(), **sums}
    return from_tally, from_runs


@pytest.mark.e2e
def test_status_reads_the_final_counts_and_they_equal_the_runs(tmp_path: Path) -> None:
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(SPEC))
    done = run_cli("run", "sweep.yaml", cwd=tmp_path, env=SUBMITTED)
    assert done.returncode == 0, done.stderr[-3000:]

    from_tally, from_runs = both_counts(tmp_path)
    assert from_tally.by_state["failed"] == 1
    assert from_tally.by_state.get("stopped_early", 0) >= 1, from_tally.by_state
    assert from_tally.best_value == pytest.approx(4.5)  # x = 0.5 at epoch 9
    assert from_tally.held["cpu_hours"] > 0

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    found = find_sweep_run(client, "tallied", "tuner.submission_id", "raysubmit_t")
    assert found is not None
    parent = found[1]
    # A driver that died after a live write leaves counts that are not final: its
    # RUNNING runs are counted from the runs, as interrupted.
    live = {**json.loads(parent.data.tags[TAG_TRIALS]), "final": False}
    live["by_state"] = {"running": 6}
    client.set_tag(parent.info.run_id, TAG_TRIALS, json.dumps(live))
    assert trial_counts(uri, "tallied", "raysubmit_t", job_ended=True) == from_runs, "paged in"
    live_counts = trial_counts(uri, "tallied", "raysubmit_t", job_ended=False)
    assert live_counts is not None
    assert live_counts.by_state == {"running": 6}, "a live sweep's counts come from its driver"


@pytest.mark.e2e
def test_a_resumed_sweep_counts_the_runs_it_found_and_the_new_ones(tmp_path: Path) -> None:
    # Trials of 6 s, cut by the budget: the first driver leaves a failed run and killed
    # ones; the resumed one reopens the killed and adds the rest.
    spec = {
        **SPEC,
        "scheduler": {"kind": "fifo"},
        "budget": {"max_wall": "8s"},
        "config": {"epochs": 6, "epoch_s": 1.0},
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    first = run_cli("run", "sweep.yaml", cwd=tmp_path, env=SUBMITTED)
    assert first.returncode == 0, first.stderr[-3000:]
    cut = both_counts(tmp_path)[0]
    assert cut.total < 6 and cut.by_state.get("killed", 0) >= 1, cut.by_state

    resumed = run_cli(
        "resume", "tallied", "--budget", "{max_wall: 5m}", cwd=tmp_path, env=SUBMITTED
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    from_tally, _ = both_counts(tmp_path)
    assert from_tally.total == 6 and "killed" not in from_tally.by_state, from_tally.by_state
    assert from_tally.by_state["failed"] == 1, "the first driver's failed trial, seeded"
