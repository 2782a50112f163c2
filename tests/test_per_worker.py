"""A user's per-worker training function (tests/per_worker.py) on 2 workers x 1 CPU, run
by the `tuner` command as a user runs it: one MLflow child run per trial with each epoch
once, the function saw a world of 2, each line a worker prints reaches the terminal
once, `tuner best` reads the sweep back, and what `tuner status` shows of a submitted
sweep counts the trials' workers. Another Ray runs on the machine meanwhile (a second
sweep's, say): Ray Train's placement-group cleaner asks the sweep's own Ray, not a
guess among the two."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import run_cli
from tuner.defaults import SUBMISSION_ID_ENV
from tuner.tracking.status import trial_counts

pytestmark = pytest.mark.e2e

EPOCHS = 3
SPEC = {
    "name": "per-worker",
    "trainable": "says:fit",
    "metric": "loss",
    "mode": "min",
    "searcher": {"kind": "grid"},
    "resources_per_trial": {"workers": 2, "cpu": 1},
    "params": {"lr": {"type": "grid", "values": [0.01, 0.05]}},
    "config": {"epochs": EPOCHS, "batch_size": 64},
}
# tests/per_worker.py, each worker first printing a line to stdout and one to stderr.
# Words without digits name the trial and the rank: Ray's deduplication of the
# terminal's lines takes words with digits out before it compares lines.
SAYS = """
import sys

import ray.train

from tests.per_worker import fit as fit_a_line


def fit(config):
    rank = ray.train.get_context().get_world_rank()
    said = f"{TRIALS[config['lr']]}-{RANKS[rank]}"
    print(f"says-out-{said}", flush=True)
    print(f"says-err-{said}", file=sys.stderr, flush=True)
    fit_a_line(config)


TRIALS = {0.01: "slow", 0.05: "fast"}
RANKS = ("zero", "one")
"""


# A second Ray on the machine, on loopback, in its own short temp folder (Ray's socket
# paths must stay short); it ends when its stdin closes.
OTHER_RAY = """
import sys

import ray

ray.init(num_cpus=1, include_dashboard=False, _temp_dir=sys.argv[1])
print("up", flush=True)
sys.stdin.read()
ray.shutdown()
"""


@contextmanager
def another_ray() -> Iterator[None]:
    folder = tempfile.mkdtemp(prefix="tw-", dir="/tmp")
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    other = subprocess.Popen(
        [sys.executable, "-c", OTHER_RAY, folder],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert other.stdout is not None and other.stdout.readline() == "up\n"
        yield
    finally:
        assert other.stdin is not None
        other.stdin.close()
        try:
            other.wait(timeout=60)
        except subprocess.TimeoutExpired:
            other.kill()
            other.wait()
        shutil.rmtree(folder, ignore_errors=True)


def test_a_per_worker_function_runs_on_two_workers_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "says.py").write_text(textwrap.dedent(SAYS))
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(SPEC))
    with another_ray():
        # As on a cluster, where `tuner submit` gives the driver its job's id.
        env = {SUBMISSION_ID_ENV: "raysubmit_ddp"}
        out = run_cli("run", "sweep.yaml", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 trials: 2 finished" in out.stdout
    # Ray Train's INFO lines per report and checkpoint stay out of the user's terminal,
    # and its run ends without a traceback from a placement-group cleaner that could not
    # ask Ray's State API (the embedded Ray serves it for multi-worker sweeps), nor
    # Ray's error line for each start of Train's node watcher (no spot nodes here).
    for noise in (
        "Reporting training result",
        "Checkpoint successfully created",
        "Failed to stop PlacementGroupCleaner",
        "PreemptionWatcher",
        "multiple active Ray instances",
        "Traceback",
    ):
        said = out.stdout + out.stderr
        assert noise not in said, said[max(0, said.find(noise) - 2000) :][:4000]
    # Each line a worker printed, once, on its own stream, with Ray's prefix for the
    # worker (Ray Train's print in its workers printed it twice: tuner turns it off).
    for trial in ("slow", "fast"):
        for rank in ("zero", "one"):
            for stream, text in (("out", out.stdout), ("err", out.stderr)):
                marker = f"says-{stream}-{trial}-{rank}"
                lines = [line for line in said.splitlines() if marker in line]
                assert len(lines) == 1, lines
                assert lines[0] in text.splitlines(), f"{marker} not on std{stream}"
                assert "(RayTrainWorker pid=" in lines[0] and "repeated" not in lines[0]

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("per-worker")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    trials = [r for r in runs if r.data.tags.get("tuner.role") == "trial"]
    assert len(trials) == 2, "one child run per trial, not per worker"
    for run in trials:
        assert run.info.status == "FINISHED"
        for key in ("loss", "world_size"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert steps == list(range(1, EPOCHS + 1)), f"{key}: each epoch once"
        assert run.data.metrics["world_size"] == 2
        assert run.data.tags["tuner.workers"] == "2 workers x 1 CPU"
        assert run.data.metrics["cpu_hours"] > 0, "the workers' CPUs, not the driver's none"
        losses = [m.value for m in client.get_metric_history(run.info.run_id, "loss")]
        assert losses[-1] < losses[0], "the workers trained the model together"

    best = run_cli("best", "per-worker", "--json", cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    report = json.loads(best.stdout)
    winner = min(trials, key=lambda r: r.data.metrics["loss"])
    assert report["run_id"] == winner.info.run_id
    # Rank 0's checkpoint, as the function wrote it.
    assert Path(report["checkpoint"], "state.pt").is_file()

    # What `tuner status` reads from MLflow for the job (its line adds "each trial ...").
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    counts = trial_counts(uri, "per-worker", "raysubmit_ddp", job_ended=True)
    assert counts is not None
    assert counts.workers == {"2 workers x 1 CPU": 2}
    assert counts.workers_line() == "each trial 2 workers x 1 CPU"
    assert counts.as_dict()["workers"] == {"2 workers x 1 CPU": 2}
