"""Sequence data and models: a user's (N, T, F) .npz, read by gru, lstm and conv1d."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from tests.conftest import run_cli
from tuner import load_spec
from tuner.spec import SpecError
from tuner.trainer import artifacts
from tuner.trainer.checkpoint import save_state
from tuner.trainer.data import DataSource, load_arrays, split_arrays
from tuner.trainer.knobs import ClassifierKnobs, RegressorKnobs
from tuner.trainer.loop import run_epochs
from tuner.trainer.models import build_model

STEPS, FEATURES = 16, 3


def pattern_sequences(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noise sequences; class 1 has a bump (+2.5 for 3 steps) in feature 0 at a random
    step, class 0 has none. Where the bump is tells nothing: the model must find it."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, STEPS, FEATURES)).astype(np.float32)
    labels = rng.integers(0, 2, n)
    for i in np.flatnonzero(labels):
        start = rng.integers(0, STEPS - 3)
        features[i, start : start + 3, 0] += 2.5
    return features, labels


@pytest.fixture(scope="module")
def sequences_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    features, labels = pattern_sequences()
    path = tmp_path_factory.mktemp("sequences") / "bumps.npz"
    np.savez(path, features=features, label=labels)
    return path


def train(path: Path, **knobs: Any) -> list[dict[str, Any]]:
    config = {"data_path": str(path), "lr": 0.01, "hidden": 16, "depth": 1, **knobs}
    return [epoch.metrics for epoch in run_epochs(config, "classification", None)]


def test_a_3d_npz_is_sequences_for_sequence_models_and_grey_images_for_the_others(
    sequences_npz: Path,
) -> None:
    as_sequences = ClassifierKnobs(data_path=str(sequences_npz), model="gru")
    splits = split_arrays(
        load_arrays(DataSource.of(as_sequences), "classification"), "classification"
    )
    assert splits.feature_shape == (STEPS, FEATURES)
    # Standardized per feature over every training sample and time step.
    train = splits.train.features
    assert np.allclose(train.mean(axis=(0, 1)), 0, atol=1e-5)
    assert np.allclose(train.std(axis=(0, 1)), 1, atol=1e-4)
    as_images = ClassifierKnobs(data_path=str(sequences_npz), model="mlp")
    images = split_arrays(load_arrays(DataSource.of(as_images), "classification"), "classification")
    assert images.feature_shape == (1, STEPS, FEATURES)


@pytest.mark.parametrize(
    ("model", "knobs"),
    [
        ("gru", {}),
        ("lstm", {"bidirectional": True}),
        ("conv1d", {"channels": 8, "conv_blocks": 2}),
    ],
)
def test_sequence_models_learn_to_find_a_pattern_anywhere_in_time(
    sequences_npz: Path, model: str, knobs: dict[str, Any]
) -> None:
    epochs = train(sequences_npz, model=model, epochs=8, **knobs)
    # 120 validation sequences, half with the bump: chance is 0.5.
    assert epochs[-1]["val_accuracy"] > 0.85, [e["val_accuracy"] for e in epochs]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]


def test_a_sequence_regressor_trains_and_reports_in_the_targets_units(tmp_path: Path) -> None:
    features, _ = pattern_sequences(400, seed=1)
    target = features[:, :, 0].sum(axis=1) * 10.0  # a sum over time, in units of 10
    np.savez(tmp_path / "sums.npz", features=features, label=target)
    config = {"data_path": str(tmp_path / "sums.npz"), "model": "gru", "hidden": 16,
              "depth": 2, "dropout": 0.1, "epochs": 8, "lr": 0.01}  # fmt: skip
    epochs = [e.metrics for e in run_epochs(config, "regression", None)]
    assert epochs[-1]["val_r2"] > 0.5
    # In the data's units: the targets' spread is about 10 * sqrt(16) = 40.
    assert epochs[-1]["val_rmse"] < 0.7 * float(target.std())


def parameters(**knobs: Any) -> int:
    model = build_model((STEPS, FEATURES), 2, ClassifierKnobs(hidden=8, **knobs))
    return sum(p.numel() for p in model.parameters())


def test_bidirectional_adds_a_backward_layer_and_widens_the_head() -> None:
    for kind in ("gru", "lstm"):
        one_way, two_way = parameters(model=kind), parameters(model=kind, bidirectional=True)
        gates = 3 if kind == "gru" else 4
        # Depth 2: the backward layers (the second reads both directions: 16 inputs), and
        # the head's extra 8 inputs per output.
        backward = gates * 8 * (FEATURES + 8 + 2) + gates * 8 * (16 + 8 + 2)
        widened = gates * 8 * 8  # the forward second layer reads 16 inputs, not 8
        assert two_way - one_way == backward + widened + 2 * 8, kind


def test_sequence_models_read_batches_of_sequences_whatever_their_length() -> None:
    for model in ("gru", "lstm", "conv1d"):
        for steps in (1, 5, 40):
            net = build_model((steps, FEATURES), 3, ClassifierKnobs(model=model))
            assert net(torch.randn(7, steps, FEATURES)).shape == (7, 3), (model, steps)
    conv = build_model((STEPS, FEATURES), 3, ClassifierKnobs(model="conv1d", kernel_size=5))
    assert [m.kernel_size for m in conv.modules() if isinstance(m, nn.Conv1d)] == [(5,), (5,)]
    assert sum(isinstance(m, nn.MaxPool1d) for m in conv.modules()) == 2


# --- one clear line when the model cannot read the data ------------------------------------


def sweep(
    folder: Path,
    config: dict[str, Any],
    params: dict[str, Any] | None = None,
    name: str = "sequences",
) -> Path:
    """A built-in classifier's sweep file in `folder`, searching lr unless told."""
    spec = {
        "name": name,
        "trainable": "builtin:classifier",
        "metric": "val_accuracy",
        "mode": "max",
        "params": params or {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        "config": config,
    }
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def refusal(path: Path) -> SpecError:
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert "\n" not in str(caught.value)
    return caught.value


def test_a_sequence_model_on_tabular_data_is_one_line_from_validate(tmp_path: Path) -> None:
    path = sweep(tmp_path, {"dataset": "wine", "model": "lstm"})
    out = run_cli("validate", path.name, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: sweep.yaml: config.model: 'lstm' needs sequences: an .npz whose features are "
        "(N, T, F), or a .parquet whose feature columns hold lists; this data is tabular, "
        "one sample (13,)"
    ]


def test_every_model_meets_the_data_shape_it_needs(sequences_npz: Path, tmp_path: Path) -> None:
    on_images = refusal(sweep(tmp_path, {"model": "conv1d"}))  # digits: 8x8 images
    assert on_images.key == "config.model"
    assert "'conv1d' needs sequences" in on_images.problem
    assert "images (C, H, W), one sample (1, 8, 8)" in on_images.problem
    searched = {"model": {"type": "categorical", "choices": ["mlp", "gru"]}}
    on_tabular = refusal(sweep(tmp_path, {"dataset": "wine"}, searched))
    assert on_tabular.key == "params.model"
    assert "'gru' needs sequences" in on_tabular.problem
    # A 3-D .npz suits them all: sequences to gru, grey images to cnn and mlp.
    every = {"model": {"type": "categorical", "choices": ["mlp", "cnn", "gru", "conv1d"]}}
    load_spec(sweep(tmp_path, {"data_path": str(sequences_npz)}, every))


def test_bidirectional_is_for_recurrent_models_only(sequences_npz: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bidirectional applies to gru and lstm"):
        RegressorKnobs(model="conv1d", bidirectional=True)
    refused = refusal(sweep(tmp_path, {"model": "mlp", "bidirectional": True}))
    assert refused.key == "config.bidirectional"
    data = {"data_path": str(sequences_npz)}
    searched: dict[str, Any] = {
        "model": {"type": "categorical", "choices": ["mlp", "gru", "lstm"]},
        "bidirectional": {"type": "categorical", "choices": [True, False]},
    }
    refused = refusal(sweep(tmp_path, data, searched))
    assert refused.key == "params.bidirectional.choices[0]"
    assert "when: {model: [gru, lstm]}" in refused.problem
    # Conditional on a recurrent model, it is checked beside gru and lstm only.
    searched["bidirectional"]["when"] = {"model": ["gru", "lstm"]}
    load_spec(sweep(tmp_path, data, searched))
    searched["bidirectional"]["when"] = {"model": ["gru", "mlp"]}
    assert refusal(sweep(tmp_path, data, searched)).key == "params.bidirectional.choices[0]"


def test_a_sequence_models_checkpoint_restores_and_scores_on_the_test_split(
    sequences_npz: Path, tmp_path: Path
) -> None:
    config = {"data_path": str(sequences_npz), "model": "conv1d", "epochs": 2, "lr": 0.01}
    last = list(run_epochs(config, "classification", None))[-1]
    save_state(last.state(), tmp_path)
    restored = artifacts.restore(str(tmp_path))
    assert restored.knobs.model == "conv1d"
    assert 0.5 < artifacts.test_metrics(str(tmp_path))["test_accuracy"] <= 1
