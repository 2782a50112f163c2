"""A 2-worker trial interrupted after epoch 2 (Ctrl-C) and finished by `tuner resume`
ends with the weights and metrics of the same trial run without a break, and MLflow has
each of its epochs once."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
import yaml
from mlflow import MlflowClient

from tests.conftest import run_and_signal, run_cli
from tuner.trainer.checkpoint import load_state

# Two CLI runs of two-worker trials: over two minutes, a `heavy` test (-m heavy).
pytestmark = [pytest.mark.e2e, pytest.mark.heavy]

EPOCHS = 4
TOLERANCE = 1e-5


def test_a_resumed_two_worker_trial_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    marker = tmp_path / "paused"
    spec = {
        "name": "ddp-resume",
        "trainable": "tests.trainables:classifier_pausing_once",
        "metric": "val_accuracy",
        "mode": "max",
        "searcher": {"kind": "grid"},
        "resources_per_trial": {"workers": 2, "cpu": 1},
        # Two trials of the same training, one at a time (2 CPUs hold one set of workers):
        # the first waits after epoch 2 and is interrupted, the second runs straight on.
        "params": {"pause_after_epoch": {"type": "grid", "values": [2, 0]}},
        "config": {
            "epochs": EPOCHS,
            "batch_size": 50,
            "optimizer": "sgd",
            "lr": 0.05,
            "seed": 3,
            "pause_marker": str(marker),
        },
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    stopped = run_and_signal(tmp_path, marker, signal.SIGINT, "run", "sweep.yaml")
    assert stopped.returncode == 130, stopped.stderr[-3000:]

    resumed = run_cli("resume", "ddp-resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "2 trials: 2 finished" in resumed.stdout
    # The interrupted trial's workers went on from its epoch-2 checkpoint, not epoch 1.
    assert Path(f"{marker}.resumed").read_text() == "2"

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ddp-resume")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    trials = {
        int(r.data.params["pause_after_epoch"]): r
        for r in runs
        if r.data.tags.get("tuner.role") == "trial"
    }
    assert sorted(trials) == [0, 2] and all(r.info.status == "FINISHED" for r in trials.values())
    for run in trials.values():
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
        assert steps == list(range(1, EPOCHS + 1)), "every epoch once, also across the break"
    for key in ("train_loss", "val_loss", "val_accuracy"):
        interrupted, straight = (trials[p].data.metrics[key] for p in (2, 0))
        assert interrupted == pytest.approx(straight, abs=TOLERANCE), key

    # Each trial's last checkpoint (the sweep keeps the last): the same weights.
    last = {}
    for params in (tmp_path / "tuner_runs" / "ddp-resume").glob("run-*/trial_*/params.json"):
        pause = json.loads(params.read_text())["pause_after_epoch"]
        (checkpoint,) = sorted(params.parent.glob("checkpoint_*"))
        last[pause] = load_state(checkpoint)
    assert sorted(last) == [0, 2]
    assert last[2].epoch == last[0].epoch == EPOCHS
    for name, tensor in last[0].model.items():
        torch.testing.assert_close(last[2].model[name], tensor, atol=TOLERANCE, rtol=0)
