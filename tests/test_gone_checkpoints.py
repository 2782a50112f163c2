"""`tuner resume` after a trial's checkpoints were deleted: it goes on from what is left.

Ray Tune failed such a trial ("Could not recover from checkpoint as it does not exist
on storage anymore"): a user who freed disk, or whose S3 lifecycle rule expired old
objects, lost every unfinished trial of the sweep.
"""

from __future__ import annotations

import re
import shutil
import signal
from pathlib import Path

import pytest
import yaml
from ray import tune

from tests.conftest import run_and_signal, run_cli
from tuner.engine.gone_checkpoints import checkpoint_is_there


def test_a_checkpoint_is_there_only_with_something_in_it(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint_000003"
    folder.mkdir()
    checkpoint = tune.Checkpoint.from_directory(str(folder))
    assert not checkpoint_is_there(checkpoint)  # emptied: it resumes nothing
    (folder / "state.json").write_text("{}")
    assert checkpoint_is_there(checkpoint)
    shutil.rmtree(folder)
    assert not checkpoint_is_there(checkpoint)


@pytest.mark.e2e
def test_a_resumed_trial_goes_on_from_its_newest_checkpoint_left_or_from_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "0")
    started = tmp_path / "started"
    sweep = {
        "name": "gone",
        "trainable": "tests.trainables:checkpointed_epochs",
        "metric": "score",
        "mode": "max",
        "searcher": {"kind": "grid"},
        "max_concurrent_trials": 2,
        "params": {"x": {"type": "grid", "values": [1, 2]}},
        "config": {"epochs": 12, "started": str(started)},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep))
    cut = run_and_signal(tmp_path, started, signal.SIGINT, "run", "s.yaml")
    assert cut.returncode == 130, cut.stderr
    [x1, x2] = sorted(
        (tmp_path / "tuner_runs" / "gone").glob("run-*/trial_*"),
        key=lambda trial: (trial / "params.json").read_text(),
    )
    assert '"x": 1' in (x1 / "params.json").read_text()
    for checkpoint in x1.glob("checkpoint_*"):  # all of one trial's
        shutil.rmtree(checkpoint)
    kept = sorted(x2.glob("checkpoint_*"))
    assert len(kept) >= 3, kept
    for checkpoint in kept[1:]:  # all but the other's first (epoch 1)
        shutil.rmtree(checkpoint)

    again = run_cli("resume", "gone", cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "2 trials: 2 finished, 0 failed" in again.stdout
    x1_id, x2_id = (trial.name.split("_", 1)[1] for trial in (x1, x2))
    assert (
        f"trial {x1_id}: its checkpoint checkpoint_" in again.stdout
        and "none before it is left; it starts again from the start" in again.stdout
    )
    # Ray's last snapshot may name a checkpoint older than the newest written: the one
    # it names is gone, and the trial goes on from the one left.
    said = re.search(
        rf"trial {x2_id}: its checkpoint (checkpoint_\d+) is gone; "
        r"it goes on from checkpoint_000000 \(epoch 1\)",
        again.stdout,
    )
    assert said is not None, again.stdout
    assert said[1] in {checkpoint.name for checkpoint in kept[1:]}
    assert Path(f"{started}.resumed-1").read_text() == "0"
    assert Path(f"{started}.resumed-2").read_text() == "1"
