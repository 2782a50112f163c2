"""Transfer is measured, not assumed: a CNN trained on the digits 0-4 and fine-tuned on
10% of the labelled 5-9 scores better on the other 90% than the same network trained
from scratch on those labels, mean over 3 seeds.

Each side gets the same small learning-rate search (the best by validation loss), so
neither wins by a rate that happens to suit it. The score is on the 5-9 digits that
neither saw (about 810 images): the validation split of 10% of them is 18 images, too
few to tell a few points apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn import datasets
from sklearn.model_selection import train_test_split

from tuner.trainer.checkpoint import TrainerState, save_state
from tuner.trainer.data import load_splits
from tuner.trainer.knobs import ClassifierKnobs
from tuner.trainer.loop import predict, run_epochs
from tuner.trainer.models import build_model

NETWORK = {"model": "cnn", "channels": 16, "conv_blocks": 2, "depth": 1, "hidden": 64}
RATES = (1e-3, 3e-3, 1e-2)
SEEDS = (0, 1, 2)


def last_state(config: dict[str, Any]) -> tuple[float, TrainerState]:
    *_, last = run_epochs(config, "classification", None)
    return last.metrics["val_loss"], last.state()


def accuracy(
    state: TrainerState, data_path: str, features: np.ndarray, labels: np.ndarray
) -> float:
    """The trained model on raw samples it never saw, standardized as its training data."""
    knobs = ClassifierKnobs.model_validate(state.knobs)
    model = build_model(tuple(state.feature_shape), state.outputs, knobs)
    model.load_state_dict(state.model)
    splits = load_splits(knobs.model_copy(update={"data_path": data_path}), "classification")
    outputs = predict(model, torch.from_numpy(splits.standardize(features)), torch.device("cpu"))
    return float((outputs.argmax(1).numpy() == labels).mean())


def best_of_rates(config: dict[str, Any]) -> TrainerState:
    """The run with the lowest final validation loss over `RATES`."""
    _, state = min((last_state({**config, "lr": lr}) for lr in RATES), key=lambda r: r[0])
    return state


@pytest.mark.e2e
def test_fine_tuning_beats_training_from_scratch_on_few_labels(tmp_path: Path) -> None:
    digits = datasets.load_digits()
    images, labels = digits.images[:, None].astype(np.float32), digits.target
    source, target = np.flatnonzero(labels < 5), np.flatnonzero(labels >= 5)
    np.savez(tmp_path / "zero_to_four.npz", features=images[source], label=labels[source])
    _, pretrained = last_state(
        {**NETWORK, "data_path": str(tmp_path / "zero_to_four.npz"), "epochs": 15}
    )
    save_state(pretrained, tmp_path)

    scores: dict[str, list[float]] = {"scratch": [], "fine-tuned": []}
    for seed in SEEDS:
        few, unseen = train_test_split(
            target, train_size=0.1, random_state=seed, stratify=labels[target]
        )
        path = str(tmp_path / f"few_{seed}.npz")
        np.savez(path, features=images[few], label=labels[few] - 5)
        config = {**NETWORK, "data_path": path, "epochs": 40, "seed": seed}
        for name, extra in (("scratch", {}), ("fine-tuned", {"init_from": str(tmp_path)})):
            state = best_of_rates({**config, **extra})
            scores[name].append(accuracy(state, path, images[unseen], labels[unseen] - 5))

    means = {name: float(np.mean(values)) for name, values in scores.items()}
    assert means["fine-tuned"] > means["scratch"], scores
