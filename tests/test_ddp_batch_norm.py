"""`sync_batch_norm`: batch norm over the global batch on a multi-worker trial's GPUs
(torch's SyncBatchNorm), refused in one line on CPU workers (torch runs it on GPUs
only), no change with one worker; without it each worker normalizes its own part."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient
from rich.console import Console
from torch import nn

from tests.conftest import run_cli
from tuner.engine.runner import RunOptions, run_sweep
from tuner.engine.trainables import check_trainable
from tuner.spec import SpecError, parse_spec
from tuner.trainer.distributed import ALONE, Shard
from tuner.trainer.loop import run_epochs

# Dropout and augmentation off (their defaults): they draw per worker. batch_size 50
# leaves a short last batch, split unevenly between the workers.
CONFIG: dict[str, Any] = {
    "epochs": 1, "batch_size": 50, "optimizer": "sgd", "seed": 3, "batch_norm": True,
}  # fmt: skip
LR = 0.05


def sweep(resources: dict[str, Any], **config: Any) -> dict[str, Any]:
    return {
        "name": "ddp-bn",
        "trainable": "builtin:classifier",
        "metric": "val_accuracy",
        "mode": "max",
        "searcher": {"kind": "grid"},
        "resources_per_trial": resources,
        "params": {"lr": {"type": "grid", "values": [LR]}},
        "config": {**CONFIG, **config},
    }


def test_synced_batch_norm_keeps_the_weights_and_their_names() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    names = list(model.state_dict())
    synced = Shard(0, 2).synced(model)
    assert isinstance(synced, nn.Sequential)  # the layers converted in place
    assert isinstance(synced[1], nn.SyncBatchNorm)
    assert list(synced.state_dict()) == names, "checkpoints load into plain batch norm"
    alone = nn.Sequential(nn.BatchNorm1d(3))
    assert ALONE.synced(alone) is alone


def test_one_process_trains_the_same_with_or_without_it() -> None:
    plain = next(iter(run_epochs({**CONFIG, "lr": LR}, "classification", None))).metrics
    synced = next(
        iter(run_epochs({**CONFIG, "lr": LR, "sync_batch_norm": True}, "classification", None))
    )
    assert synced.metrics["train_loss"] == plain["train_loss"]


def refusal(raw: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as caught:
        check_trainable(parse_spec(raw))
    return caught.value


def test_cpu_workers_refuse_it_and_one_worker_or_gpus_take_it() -> None:
    fixed = refusal(sweep({"workers": 2, "cpu": 1}, sync_batch_norm=True))
    assert fixed.key == "config.sync_batch_norm"
    assert "GPUs only" in fixed.problem and "gpu: 0" in fixed.problem
    searched = sweep({"workers": 2, "cpu": 1})
    searched["params"]["sync_batch_norm"] = {"type": "grid", "values": [False, True]}
    assert refusal(searched).key == "params.sync_batch_norm"
    # One worker: nothing to sync, nothing refused; GPU workers: torch's own case.
    check_trainable(parse_spec(sweep({"workers": 1, "cpu": 1}, sync_batch_norm=True)))
    check_trainable(parse_spec(sweep({"workers": 2, "cpu": 1, "gpu": 1}, sync_batch_norm=True)))
    check_trainable(parse_spec(sweep({"workers": 2, "cpu": 1}, sync_batch_norm=False)))


def test_a_batch_that_leaves_a_worker_one_sample_is_refused_where_it_is_set() -> None:
    """batch_size is the global batch: 3 over 2 workers gives one of them 1 sample a
    step, and batch norm on 1 sample fails the trial at its first step (torch)."""
    cpus = {"workers": 2, "cpu": 1}
    fixed = refusal(sweep(cpus, batch_size=3))
    assert fixed.key == "config.batch_size"
    assert fixed.problem == (
        "batch_size 3 over 2 workers leaves a worker 1 sample a step, and batch_norm "
        "needs 2 on each: use batch_size 4 or more"
    )
    searched = sweep(cpus)
    del searched["config"]["batch_size"]
    searched["params"]["batch_size"] = {"type": "categorical", "choices": [64, 2]}
    assert refusal(searched).key == "params.batch_size.choices[1]"
    searched["params"]["batch_size"] = {"type": "int", "low": 3, "high": 64}
    searched["searcher"] = {"kind": "random"}
    assert refusal(searched).key == "params.batch_size.low"
    maybe = sweep(cpus, batch_size=2)
    del maybe["config"]["batch_norm"]
    maybe["params"]["batch_norm"] = {"type": "categorical", "choices": [False, True]}
    assert refusal(maybe).key == "config.batch_size"
    # Enough for each, no batch norm, one worker, or SyncBatchNorm over all the GPUs.
    check_trainable(parse_spec(sweep(cpus, batch_size=4)))
    check_trainable(parse_spec(sweep(cpus, batch_size=3, batch_norm=False)))
    check_trainable(parse_spec(sweep({"workers": 1, "cpu": 1}, batch_size=2)))
    gpus = {"workers": 2, "cpu": 1, "gpu": 1}
    check_trainable(parse_spec(sweep(gpus, batch_size=3, sync_batch_norm=True)))
    assert refusal(sweep(gpus, batch_size=3)).problem.endswith(", or sync_batch_norm: true")


def test_validate_says_it_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bn.yaml"
    path.write_text(yaml.safe_dump(sweep({"workers": 2, "cpu": 1}, sync_batch_norm=True)))
    result = run_cli("validate", str(path), cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {path}: config.sync_batch_norm: torch's SyncBatchNorm")


@pytest.mark.ray
@pytest.mark.heavy  # about 40 s: a sweep of two-worker trials, why the knob is there
def test_without_it_two_cpu_workers_normalize_each_their_half(
    ray_session: None, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    options = RunOptions(
        tracking_uri=uri, storage=str(tmp_path / "runs"), console=Console(file=io.StringIO())
    )
    run_sweep(parse_spec(sweep({"workers": 2, "cpu": 1})), options)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("ddp-bn")
    assert experiment is not None
    (trial,) = [
        r
        for r in client.search_runs([experiment.experiment_id])
        if r.data.tags.get("tuner.role") == "trial"
    ]
    assert trial.info.status == "FINISHED"
    alone = next(iter(run_epochs({**CONFIG, "lr": LR}, "classification", None))).metrics[
        "train_loss"
    ]
    two = trial.data.metrics["train_loss"]
    print(f"first-epoch train_loss: one process {alone:.6f}, 2 CPU workers {two:.6f}")
    # Statistics of 25 rows are not those of the batch's 50: another (valid) trajectory,
    # far from the 1e-5 by which a 2-worker step without batch norm matches one process.
    assert abs(two - alone) > 1e-3
