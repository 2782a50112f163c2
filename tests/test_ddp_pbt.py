"""PBT over multi-worker trials: 4 trials of the built-in classifier, each 2 Ray Train
workers x 0.5 CPU, two at a time on the 2-core machine. An exploit pauses a trial and
starts it again from a donor's checkpoint on the same CPUs, so the paused trial's Train
run must give its workers back first (tuner.engine.multi_worker.EndsItsTrainRun)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from rich.console import Console

from tuner.engine.runner import RunOptions, run_sweep
from tuner.engine.tuner_factory import trainable_with_resources
from tuner.spec import parse_spec
from tuner.tracking.tags import TAG_EXPLOIT

# Epochs long enough (a wide model, small batches: an all-reduce a step) that the two
# trials running at once overlap at their perturbations.
EPOCHS = 12


@pytest.mark.ray
@pytest.mark.heavy  # about 6 minutes: every exploit restarts a Train run, 7 processes
def test_pbt_exploits_multi_worker_trials_and_each_epoch_is_logged_once(
    ray_session: None, tmp_path: Path
) -> None:
    spec = parse_spec(
        {
            "name": "ddp-pbt",
            "trainable": "builtin:classifier",
            "metric": "val_accuracy",
            "mode": "max",
            "searcher": {"kind": "random", "seed": 0},
            "num_samples": 1,
            # Two trials at once, as PBT needs: its population is the trials still running.
            "resources_per_trial": {"workers": 2, "cpu": 0.5},
            # Two rates that learn nothing in a few epochs: the slow trials copy a fast one.
            "params": {"lr": {"type": "grid", "values": [1.0e-5, 2.0e-5, 0.05, 0.1]}},
            "scheduler": {
                "kind": "pbt",
                "perturbation_interval": 4,
                "mutations": {"lr": {"type": "float", "low": 1.0e-5, "high": 0.1, "log": True}},
            },
            "config": {
                "epochs": EPOCHS,
                "optimizer": "momentum",
                "hidden": 512,
                "batch_size": 16,
            },
        }
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_sweep(
        spec,
        RunOptions(
            tracking_uri=uri, storage=str(tmp_path / "runs"), console=Console(file=io.StringIO())
        ),
    )
    assert result.best is not None and result.best.run_id is not None

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("ddp-pbt")
    assert experiment is not None
    runs = [
        run
        for run in client.search_runs([experiment.experiment_id])
        if "mlflow.parentRunId" in run.data.tags
    ]
    assert len(runs) == 4, "one run per trial, not per worker or per restart"
    assert {run.info.status for run in runs} == {"FINISHED"}
    assert all(run.data.tags["tuner.workers"] == "2 workers x 0.5 CPUs" for run in runs)
    exploited = [run for run in runs if TAG_EXPLOIT in run.data.tags]
    assert exploited, "a slow trial copied a fast one's checkpoint"
    for run in runs:
        epochs = [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
        # Each epoch once; an exploited trial goes on from its donor's epoch, so it may
        # skip some (PBT copies the donor's training iterations with its weights).
        assert epochs == sorted(set(epochs)) and epochs[-1] == EPOCHS, epochs
    for exploit in json.loads(exploited[0].data.tags[TAG_EXPLOIT]):
        assert exploit["epoch"] == exploit["from_epoch"] + 1
        # Trained on from the donor's weights: it scores as the donor did, not as the
        # rate of 1e-5 it started with would.
        assert exploit["from_trial"] in {run.data.tags["tuner.trial_id"] for run in runs}


def free_cpus() -> float:
    import ray

    return float(ray.available_resources().get("CPU", 0))


def free_cpus_become(wanted: float, within_s: float = 5.0) -> float:
    """The free CPUs once they are `wanted`, or after `within_s`. Ray's view of free
    resources reaches the driver from the raylet a moment after they change (on a busy
    machine, up to seconds); a trial whose workers are not given back stays far longer
    (a replaced Train run waited 60 s for them)."""
    deadline = time.monotonic() + within_s
    while (free := free_cpus()) != wanted and time.monotonic() < deadline:
        time.sleep(0.1)
    return free


@pytest.mark.ray
@pytest.mark.heavy  # about 50 s: a two-worker Train run started and stopped
def test_a_stopped_multi_worker_trial_has_freed_its_workers_when_stop_returns(
    ray_session: None, tmp_path: Path
) -> None:
    # What Tune does to pause a trial (PBT's exploit) or stop it (ASHA): stop(), then the
    # actor goes. The trial's two workers hold both CPUs; once stop() returns, the
    # trial taking their place must find them free, not wait for Ray to notice.
    import ray
    from ray.train._internal.storage import StorageContext
    from ray.tune.trainable.function_trainable import wrap_function

    config = {"epochs": 50, "hidden": 512, "batch_size": 16, "lr": 0.05}
    spec = parse_spec(
        {
            "name": "stopped",
            "trainable": "builtin:classifier",
            "metric": "val_accuracy",
            "mode": "max",
            "resources_per_trial": {"workers": 2, "cpu": 1},
            "params": {"lr": {"type": "float", "low": 0.01, "high": 0.1}},
            "config": {key: value for key, value in config.items() if key != "lr"},
        }
    )
    deadline = time.monotonic() + 60
    while free_cpus() < 2 and time.monotonic() < deadline:  # the sweep above's workers
        time.sleep(0.5)
    trainable = wrap_function(trainable_with_resources(spec, {}))
    trial: Any = ray.remote(num_cpus=0)(trainable).remote(
        config=config, storage=StorageContext(str(tmp_path), "stopped", trial_dir_name="trial")
    )
    try:
        first: dict[str, Any] = ray.get(trial.train.remote(), timeout=180)
        assert first["training_iteration"] == 1
        assert free_cpus_become(0) == 0, "the workers train on"
        ray.get(trial.stop.remote(), timeout=120)
        assert free_cpus_become(2) == 2
    finally:
        ray.kill(trial)
