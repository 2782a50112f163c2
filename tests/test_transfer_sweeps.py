"""Fine-tuning through the CLI: one sweep starts from another's best trial (`sweep:NAME`)
or from a run's checkpoint (`runs:/`), with what it loaded frozen; what cannot work is
one line before any trial starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.artifacts
import numpy as np
import pytest
import torch
import yaml
from mlflow import MlflowClient

from tests.conftest import run_cli
from tests.test_trainer_transfer import digits_npz
from tuner.tracking.tags import TAG_BEST_RUN, TAG_ROLE

LR = {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}
NETWORK = {"model": "cnn", "channels": 4, "conv_blocks": 2, "depth": 1, "hidden": 16}


def write(tmp_path: Path, name: str, **fields: Any) -> Path:
    sweep = {
        "name": name,
        "trainable": "builtin:classifier",
        "metric": "val_accuracy",
        "mode": "max",
        "max_concurrent_trials": 2,
        **fields,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def best_checkpoint(tracking_uri: str, sweep: str, folder: Path) -> dict[str, torch.Tensor]:
    """The weights in the checkpoint MLflow keeps for the sweep's best trial."""
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(sweep)
    assert experiment is not None
    (parent,) = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{TAG_ROLE}` = 'sweep'"
    )
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"runs:/{parent.data.tags[TAG_BEST_RUN]}/checkpoint",
        dst_path=str(folder),
        tracking_uri=tracking_uri,
    )
    state = torch.load(Path(local) / "state.pt", weights_only=True)
    return state["model"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where sweep `digits04` trained a CNN on the digits 0-4."""
    folder = tmp_path_factory.mktemp("transfer")
    digits_npz(folder / "zero_to_four.npz", [0, 1, 2, 3, 4])
    digits_npz(folder / "five_to_nine.npz", [5, 6, 7, 8, 9])
    config = {**NETWORK, "data_path": "zero_to_four.npz", "epochs": 3}
    write(folder, "digits04", config=config, params=LR, num_samples=1)
    done = run_cli("run", "digits04.yaml", cwd=folder, timeout=300)
    assert done.returncode == 0, done.stderr
    return folder


@pytest.mark.e2e
def test_a_sweep_fine_tunes_another_sweeps_best_trial(pretrained: Path) -> None:
    config = {
        "init_from": "sweep:digits04",  # the network's knobs come with it
        "data_path": "five_to_nine.npz",
        "freeze": 2,  # both conv blocks as loaded; the hidden layer and a new head learn
        "head_lr_mult": 10,
        "epochs": 2,
    }
    write(pretrained, "digits59", config=config, params=LR, num_samples=2)
    done = run_cli("run", "digits59.yaml", cwd=pretrained, timeout=300)
    assert done.returncode == 0, done.stderr

    tracking = f"sqlite:///{pretrained / 'mlflow.db'}"
    before = best_checkpoint(tracking, "digits04", pretrained / "before")
    after = best_checkpoint(tracking, "digits59", pretrained / "after")
    # Modules 0 and 3 are the conv layers, 7 the hidden layer, 9 the head.
    for frozen in ("0.weight", "0.bias", "3.weight", "3.bias"):
        assert torch.equal(after[frozen], before[frozen]), frozen
    assert not torch.equal(after["7.weight"], before["7.weight"])
    assert after["9.weight"].shape == before["9.weight"].shape == (5, 16)

    # MLflow shows the network the trials trained: the checkpoint's, not the defaults.
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("digits59")
    assert experiment is not None
    trials = [
        run
        for run in client.search_runs([experiment.experiment_id])
        if run.data.tags.get(TAG_ROLE) == "trial"
    ]
    assert len(trials) == 2 and {r.info.status for r in trials} == {"FINISHED"}
    # The fetched checkpoint was staged in the sweep's storage, where every trial read it.
    (staged,) = (pretrained / "tuner_runs" / ".tuner-init").glob("*/state.pt")
    assert torch.load(staged, weights_only=True)["model"]["0.weight"].equal(before["0.weight"])


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("fields", "says"),
    [
        (
            {"config": {"hidden": 32}},
            "config.hidden: 32, but the init_from checkpoint's network has hidden 16",
        ),
        (
            {"params": {"depth": {"type": "int", "low": 1, "high": 3}}},
            "params.depth: init_from fixes the network",
        ),
        ({"config": {"freeze": 4}}, "config.freeze: 4 blocks, but this cnn has 3 below its head"),
        ({"config": {"data_path": "wide.npz"}}, "shape (1, 8, 8); this data's are (1, 8, 16)"),
    ],
)
def test_a_checkpoint_that_cannot_start_the_sweep_is_one_line_at_validate(
    pretrained: Path, tmp_path: Path, fields: dict[str, Any], says: str
) -> None:
    tracking = f"sqlite:///{pretrained / 'mlflow.db'}"
    checkpoint = tmp_path / "checkpoint"
    best_checkpoint(tracking, "digits04", checkpoint)  # a local copy: validate reads it
    wide = np.zeros((50, 1, 8, 16), np.float32)
    np.savez(tmp_path / "wide.npz", features=wide, label=np.arange(50) % 5)
    config = {
        "init_from": str(checkpoint / "checkpoint"),
        "data_path": str(pretrained / "five_to_nine.npz"),
    }
    config |= fields.get("config", {})
    params = fields.get("params", LR)
    write(tmp_path, "bad", config=config, params=params)
    done = run_cli("validate", "bad.yaml", cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stdout
    assert done.stderr.count("\n") == 1 and says in done.stderr, done.stderr


@pytest.mark.e2e
def test_an_mlflow_reference_that_names_nothing_is_one_line(pretrained: Path) -> None:
    for reference, says in (
        ("sweep:nosuchsweep", "config.init_from: sweep:nosuchsweep: no sweep named 'nosuchsweep'"),
        (
            "runs:/0123456789abcdef/checkpoint",
            "config.init_from: runs:/0123456789abcdef/checkpoint: cannot fetch",
        ),
    ):
        config = {"init_from": reference, "data_path": "five_to_nine.npz", "epochs": 1}
        write(pretrained, "missing", config=config, params=LR)
        done = run_cli("run", "missing.yaml", cwd=pretrained, timeout=120)
        assert done.returncode == 2, done.stderr
        assert says in done.stderr and "Traceback" not in done.stderr, done.stderr
