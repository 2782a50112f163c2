"""A user's checkpoint folder holding links, through a real sweep run by the `tuner`
command: a link out of the folder (a credentials file, a data folder) reached neither
the sweep's storage nor MLflow, the rest of the checkpoint did, and each trial said so
in one line, not once per epoch."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.test_user_code import trial_runs, write_sweep

LINKING_CODE = """
    import os
    import tempfile
    from pathlib import Path

    from ray import tune


    def fit(config):
        outside = Path(config["linked_file"])
        for epoch in range(1, 4):
            with tempfile.TemporaryDirectory() as folder:
                Path(folder, "weights.txt").write_text(f"weights of epoch {epoch}")
                Path(folder, "state").mkdir()
                Path(folder, "state", "optimizer.txt").write_text("moments")
                os.symlink("weights.txt", Path(folder, "latest.txt"))  # inside: kept
                os.symlink(outside, Path(folder, "credentials"))  # the user's secret
                os.symlink(outside.parent, Path(folder, "data"))  # a folder outside
                tune.report(
                    {"epoch": epoch, "loss": config["x"] / epoch},
                    checkpoint=tune.Checkpoint.from_directory(folder),
                )
"""


def _files_holding(root: Path, secret: bytes) -> list[str]:
    return [
        str(path)
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink() and secret in path.read_bytes()
    ]


@pytest.mark.e2e
def test_a_link_out_of_a_checkpoint_reaches_neither_storage_nor_mlflow(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    secret = f"aws_secret_access_key = {uuid.uuid4().hex}"
    home = tmp_path_factory.mktemp("home")  # outside the sweep's folders
    credentials = home / ".aws" / "credentials"
    credentials.parent.mkdir()
    credentials.write_text(secret)
    work = tmp_path / "work"
    work.mkdir()
    sweep = write_sweep(
        work,
        LINKING_CODE,
        metric="loss",
        mode="min",
        searcher={"kind": "grid"},
        params={"x": {"type": "grid", "values": [1.0, 2.0]}},
        # Not under a key that names a secret: a trial's output would show <secret>.
        config={"linked_file": str(credentials)},
    )
    out = run_cli("run", sweep.name, cwd=work)
    assert out.returncode == 0, out.stderr

    # Storage (./tuner_runs) and MLflow (mlflow.db, its artifacts beside it) hold no
    # byte of the secret: the user's credentials file is the only place it is.
    storage = work / "tuner_runs"
    assert _files_holding(work, secret.encode()) == []
    checkpoints = sorted(storage.rglob("checkpoint_*"))
    assert len(checkpoints) >= 2  # each trial's latest, at least
    for checkpoint in checkpoints:
        kept = sorted(str(p.relative_to(checkpoint)) for p in checkpoint.rglob("*"))
        assert kept == ["latest.txt", "state", "state/optimizer.txt", "weights.txt"], kept
        assert (checkpoint / "latest.txt").read_text() == "weights of epoch 3"

    client, parent, trials = trial_runs(work)
    assert parent.info.status == "FINISHED" and len(trials) == 2
    best = parent.data.tags["tuner.best_run_id"]
    logged = sorted(a.path for a in client.list_artifacts(best, "checkpoint"))
    assert logged == [
        "checkpoint/latest.txt", "checkpoint/state", "checkpoint/weights.txt"
    ]  # fmt: skip

    # One line per trial, naming the checkpoint folder and both links, though each of
    # its three reports had them.
    told = [line for line in out.stderr.splitlines() if "left out" in line]
    assert len(told) == 2, out.stderr
    trials_told = {re.search(r"warning: trial (\w+): checkpoint /", line) for line in told}
    assert {match.group(1) for match in trials_told if match} == {
        run.data.tags["tuner.trial_id"] for run in trials
    }
    for line in told:
        assert f"credentials (a link to {credentials}, outside the checkpoint folder)" in line
        assert f"data (a link to {home}/.aws, outside the checkpoint folder)" in line
    assert secret not in out.stdout + out.stderr
