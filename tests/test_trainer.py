"""The built-in trainer: data splits, and exact resume from a per-epoch checkpoint."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from ray import tune
from rich.console import Console

from tests.conftest import each_result
from tuner.engine.checkpoints import prune_checkpoints
from tuner.engine.experiments import Experiment
from tuner.engine.runner import RunOptions, run_sweep
from tuner.engine.storage import resolve_storage
from tuner.engine.tuner_factory import build_tuner
from tuner.search.early_stops import EarlyStops
from tuner.spec import SweepSpec, parse_spec
from tuner.trainer.checkpoint import load_state
from tuner.trainer.data import DataSource, load_arrays, split_arrays
from tuner.trainer.knobs import ClassifierKnobs

EPOCHS = 5
CRASH_AFTER = 2


def test_splits_are_disjoint_fixed_and_standardized_on_train_only() -> None:
    splits = split_arrays(
        load_arrays(DataSource.of(ClassifierKnobs()), "classification"), "classification"
    )
    sizes = [len(s.labels) for s in (splits.train, splits.val, splits.test)]
    assert sum(sizes) == 1797 and min(sizes) > 300
    assert splits.feature_shape == (1, 8, 8) and splits.num_classes == 10
    train_mean = splits.train.features.mean(axis=0)
    assert np.allclose(train_mean, 0, atol=1e-4)
    # Validation statistics are not forced to zero: the scaler never saw them.
    assert np.abs(splits.val.features.mean(axis=0)).max() > 1e-3
    again = split_arrays(
        load_arrays(DataSource.of(ClassifierKnobs()), "classification"), "classification"
    )
    assert np.array_equal(again.val.labels, splits.val.labels)


class EpochLog(tune.Callback):  # type: ignore[misc]
    def __init__(self) -> None:
        self.epochs: list[int] = []

    def on_trial_result(
        self, iteration: int, trials: Any, trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        self.epochs.append(int(result["epoch"]))


def fit(tmp_path: Path, spec: SweepSpec, callback: tune.Callback, *, on_cluster: bool) -> Any:
    """The sweep's Tuner, as tuner builds it, fitted in its own experiment folder."""
    experiment = Experiment(resolve_storage(str(tmp_path / "runs")), spec.name, spec.name)
    tuner = build_tuner(
        spec,
        experiment,
        [callback],
        EarlyStops.shared(experiment.uri),
        withheld={},
        on_cluster=on_cluster,
    )
    return tuner.fit()


def run_trial(
    tmp_path: Path, name: str, crash_after: int
) -> tuple[list[int], dict[str, torch.Tensor], int]:
    spec = parse_spec(
        {
            "name": name,
            "trainable": "tests.trainables:crash_once_after",
            "metric": "val_accuracy",
            "mode": "max",
            "searcher": {"kind": "random", "seed": 0},
            "params": {"hidden": {"type": "grid", "values": [24]}},
            "config": {
                "epochs": EPOCHS,
                "dropout": 0.3,  # exercises the RNG state that the checkpoint carries
                "crash_after_epoch": crash_after,
                "crash_marker": str(tmp_path / f"{name}.crashed"),
            },
        }
    )
    log = EpochLog()
    # On a cluster, FailureConfig restarts the trial from its checkpoint.
    result = fit(tmp_path, spec, log, on_cluster=True)[0]
    assert result.error is None
    with result.checkpoint.as_directory() as directory:
        state = load_state(directory)
    return log.epochs, state.model, state.epoch


@pytest.mark.ray
def test_checkpoint_at_epoch_k_resumes_at_k_plus_1_with_the_same_weights(
    ray_session: None, tmp_path: Path
) -> None:
    resumed_epochs, resumed_weights, resumed_last = run_trial(tmp_path, "resumed", CRASH_AFTER)
    assert (tmp_path / "resumed.crashed").exists(), "the injected crash did not happen"
    straight_epochs, straight_weights, _ = run_trial(tmp_path, "straight", crash_after=0)

    # Every epoch reported once, in order: the restart began at CRASH_AFTER + 1.
    assert resumed_epochs == list(range(1, EPOCHS + 1)) == straight_epochs
    assert resumed_last == EPOCHS
    # Same weights, bit for bit, as the run that was never interrupted.
    assert resumed_weights.keys() == straight_weights.keys()
    for name, tensor in resumed_weights.items():
        assert torch.equal(tensor, straight_weights[name]), name


@pytest.mark.ray
def test_a_trial_that_stops_itself_says_why(ray_session: None, tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "name": "patience",
            "trainable": "builtin:classifier",
            "metric": "val_accuracy",
            "mode": "max",
            "searcher": {"kind": "grid"},
            "params": {"lr": {"type": "grid", "values": [1e-6]}},  # learns nothing
            "config": {"epochs": 20, "patience": 2, "min_delta": 0.5},
        }
    )
    result = run_sweep(
        spec,
        RunOptions(
            tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
            storage=str(tmp_path / "runs"),
            console=Console(file=io.StringIO()),
        ),
    )
    assert result.best is not None and result.best.run_id is not None
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(result.best.run_id)
    # Epoch 1 sets the best; 2 and 3 do not beat it by 0.5; the trial ends after epoch 3.
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")]
    assert steps == [1, 2, 3]
    assert run.info.status == "FINISHED"
    assert run.data.tags["tuner.stop_reason"].startswith(
        "early stopping: val_loss did not improve by more than 0.5 for 2 epochs"
    )


class CheckpointedEpochs(tune.Callback):  # type: ignore[misc]
    """The epoch inside each checkpoint a trial wrote, in order, and its last epoch."""

    def __init__(self) -> None:
        self.saved: dict[str, list[int]] = {}
        self.last_epoch: dict[str, int] = {}

    def on_trial_result(
        self, iteration: int, trials: Any, trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        self.last_epoch[trial.trial_id] = int(result["epoch"])

    def on_checkpoint(
        self, iteration: int, trials: Any, trial: Any, checkpoint: Any, **info: Any
    ) -> None:
        self.saved.setdefault(trial.trial_id, []).append(load_state(checkpoint.path).epoch)


def checkpoints_of(tmp_path: Path, name: str, **sweep: Any) -> CheckpointedEpochs:
    log, _ = sweep_with_checkpoints(tmp_path, name, **sweep)
    return log


def sweep_with_checkpoints(
    tmp_path: Path, name: str, **sweep: Any
) -> tuple[CheckpointedEpochs, tune.ResultGrid]:
    spec = parse_spec(
        {
            "name": name,
            "trainable": "builtin:classifier",
            "metric": "val_accuracy",
            "mode": "max",
            "searcher": {"kind": "random", "seed": 0},
            "max_concurrent_trials": 2,
            **sweep,
        }
    )
    log = CheckpointedEpochs()
    results = fit(tmp_path, spec, log, on_cluster=False)
    assert not results.errors
    return log, results


@pytest.mark.ray
def test_checkpoints_follow_the_policy_and_the_last_epoch_always_has_one(
    ray_session: None, tmp_path: Path
) -> None:
    every_second = checkpoints_of(
        tmp_path,
        "every-second",
        checkpoint={"every_epochs": 2, "min_interval_s": 0},
        params={"hidden": {"type": "grid", "values": [16]}},
        config={"epochs": 5},
    )
    assert list(every_second.saved.values()) == [[2, 4, 5]]
    # The default waits 30 s between checkpoints: a short trial writes only its last.
    default = checkpoints_of(
        tmp_path,
        "default-policy",
        params={"hidden": {"type": "grid", "values": [16]}},
        config={"epochs": 5},
    )
    assert list(default.saved.values()) == [[5]]


@pytest.mark.ray
def test_every_asha_rung_has_a_checkpoint_so_a_stopped_trial_keeps_where_it_stopped(
    ray_session: None, tmp_path: Path
) -> None:
    log = checkpoints_of(
        tmp_path,
        "rungs",
        num_samples=6,
        scheduler={"kind": "asha", "max_t": 4, "grace_period": 1, "reduction_factor": 2},
        checkpoint={"every_epochs": 1, "min_interval_s": 3600},
        params={"lr": {"type": "float", "low": 1e-4, "high": 0.5, "log": True}},
        config={"epochs": 6},
    )
    assert len(log.last_epoch) == 6
    stopped_early = [t for t, last in log.last_epoch.items() if last < 4]
    assert stopped_early, "ASHA stopped no trial: the test proves nothing"
    for trial_id, last in log.last_epoch.items():
        # Rungs at 1, 2 and 4 (= max_t, where ASHA ends every trial that got there).
        assert log.saved[trial_id] == [rung for rung in (1, 2, 4) if rung <= last]


@pytest.mark.ray
def test_every_checkpoint_stays_until_the_sweep_ends_then_only_the_latest(
    ray_session: None, tmp_path: Path
) -> None:
    log, results = sweep_with_checkpoints(
        tmp_path,
        "pruned",
        checkpoint={"every_epochs": 1, "min_interval_s": 0},
        params={"hidden": {"type": "grid", "values": [16]}},
        config={"epochs": 4},
    )
    (result,) = each_result(results)
    trial_dir = Path(result.path)
    assert list(log.saved.values()) == [[1, 2, 3, 4]]
    # Ray deleted none of them while the sweep ran: a lost driver could resume from any.
    assert len(sorted(trial_dir.glob("checkpoint_*"))) == 4
    assert prune_checkpoints(results, resolve_storage(str(tmp_path / "runs"))) == 3
    assert result.checkpoint is not None
    assert [p.name for p in trial_dir.glob("checkpoint_*")] == [Path(result.checkpoint.path).name]
    assert load_state(result.checkpoint.path).epoch == 4
