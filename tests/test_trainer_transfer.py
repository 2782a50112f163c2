"""Fine-tuning knobs: init_from loads a checkpoint's weights, freeze keeps layers as
loaded, head_lr_mult gives the head its own rate; a checkpoint that does not fit is one
line. (The transfer itself is measured end to end in test_transfer_sweeps.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from sklearn import datasets
from torch import nn

from tuner.trainer.checkpoint import TrainerState, load_state, save_state
from tuner.trainer.knobs import ClassifierKnobs
from tuner.trainer.loop import run_epochs
from tuner.trainer.models import build_model
from tuner.trainer.optim import build_optimizer, build_schedule
from tuner.trainer.transfer import (
    TransferError,
    body_blocks,
    head_of,
    parameter_groups,
    read_checkpoint,
    start_from_checkpoint,
)

CNN = {"model": "cnn", "channels": 4, "conv_blocks": 2, "depth": 1, "hidden": 16}


def trained(config: dict[str, Any], folder: Path) -> TrainerState:
    """Train `config` to its end and keep its last checkpoint in `folder`."""
    *_, last = run_epochs(config, "classification", None)
    state = last.state()
    save_state(state, folder)
    return state


def digits_npz(path: Path, classes: list[int]) -> str:
    """The digits of `classes` only, relabelled 0..K-1, as a user's .npz of images."""
    bunch = datasets.load_digits()
    keep = np.isin(bunch.target, classes)
    labels = np.searchsorted(classes, bunch.target[keep])
    np.savez(path, features=bunch.images[keep][:, None].astype(np.float32), label=labels)
    return str(path)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainerState]:
    folder = tmp_path_factory.mktemp("pretrained")
    return folder, trained({**CNN, "epochs": 2, "batch_norm": True}, folder)


def last_epoch(config: dict[str, Any]) -> TrainerState:
    *_, last = run_epochs(config, "classification", None)
    return last.state()


def test_init_from_starts_from_the_checkpoints_weights(
    pretrained: tuple[Path, TrainerState],
) -> None:
    folder, state = pretrained
    knobs = ClassifierKnobs.model_validate({**CNN, "batch_norm": True, "init_from": str(folder)})
    model = build_model((1, 8, 8), 10, knobs)
    start_from_checkpoint(model, knobs, (1, 8, 8), resuming=False)
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, state.model[key]), key


def test_the_head_is_new_when_the_classes_differ(
    pretrained: tuple[Path, TrainerState], tmp_path: Path
) -> None:
    folder, state = pretrained
    five = digits_npz(tmp_path / "five.npz", [5, 6, 7, 8, 9])
    config = {**CNN, "batch_norm": True, "init_from": str(folder), "data_path": five}
    config |= {"epochs": 1, "lr": 1e-12}  # so small a step that weights stay as loaded
    after = last_epoch(config)
    head = [key for key, tensor in after.model.items() if tensor.ndim and tensor.shape[0] == 5]
    assert head == ["12.weight", "12.bias"]  # the head alone has one row per class
    body = set(after.model) - set(head)
    for key in body - {k for k in body if "running" in k or "batches" in k}:
        assert torch.allclose(after.model[key], state.model[key], atol=1e-6), key


def test_freeze_body_trains_the_head_only(pretrained: tuple[Path, TrainerState]) -> None:
    folder, state = pretrained
    config = {**CNN, "batch_norm": True, "init_from": str(folder), "freeze": "body"}
    after = last_epoch({**config, "epochs": 1, "lr": 0.01})
    changed = {key for key in after.model if not torch.equal(after.model[key], state.model[key])}
    # Frozen batch norms keep their loaded running statistics too.
    assert changed == {"12.weight", "12.bias"}


def test_freeze_n_keeps_the_first_n_blocks(pretrained: tuple[Path, TrainerState]) -> None:
    folder, state = pretrained
    config = {**CNN, "batch_norm": True, "init_from": str(folder), "freeze": 1}
    after = last_epoch({**config, "epochs": 1, "lr": 0.01})
    changed = {
        key.split(".")[0]
        for key, tensor in after.model.items()
        if not torch.equal(tensor, state.model[key])
    }
    # Module 0 is the first conv, 1 its batch norm; the second block (4, 5) and the rest
    # learn: the hidden layer (9, 10) and the head (12).
    assert changed == {"4", "5", "9", "10", "12"}


def test_freeze_counts_a_recurrent_models_layers() -> None:
    knobs = ClassifierKnobs(model="gru", depth=2, hidden=8, init_from="x", freeze=1)
    model = build_model((6, 3), 2, knobs)
    blocks = body_blocks(model)
    assert len(blocks) == 2 and all(len(block.parameters) == 4 for block in blocks)
    assert head_of(model) is model.head  # type: ignore[comparison-overlap]


def test_head_lr_mult_gives_the_head_its_own_rate_through_the_schedule() -> None:
    knobs = ClassifierKnobs(lr=0.01, head_lr_mult=10, lr_schedule="one_cycle", epochs=4)
    model = build_model((8,), 3, knobs)
    optimizer = build_optimizer(parameter_groups(model, knobs), knobs)
    schedule, _ = build_schedule(optimizer, knobs, steps_per_epoch=10)
    peaks = [0.0, 0.0]
    for _ in range(40):
        optimizer.step()
        schedule.step()
        peaks = [max(peak, g["lr"]) for peak, g in zip(peaks, optimizer.param_groups, strict=True)]
    assert peaks == pytest.approx([0.01, 0.1], rel=0.01)
    head = set(map(id, head_of(model).parameters()))
    assert {id(p) for p in optimizer.param_groups[1]["params"]} == head


def test_frozen_weights_are_not_in_the_optimizer() -> None:
    knobs = ClassifierKnobs(init_from="x", freeze="body", weight_decay=0.1)
    model = build_model((8,), 3, knobs)
    start_from_checkpoint(model, knobs, (8,), resuming=True)  # resuming: nothing to read
    (group,) = parameter_groups(model, knobs)
    assert {id(p) for p in group["params"]} == set(map(id, head_of(model).parameters()))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"hidden": 32}, "hidden 16, this sweep 32"),
        ({"model": "mlp"}, "model 'cnn', this sweep 'mlp'"),
    ],
)
def test_a_network_that_does_not_fit_is_one_line(
    pretrained: tuple[Path, TrainerState], change: dict[str, Any], says: str
) -> None:
    folder, _ = pretrained
    config = {**CNN, "batch_norm": True, "init_from": str(folder), "epochs": 1, **change}
    with pytest.raises(TransferError, match=says):
        last_epoch(config)


def test_other_samples_are_one_line(pretrained: tuple[Path, TrainerState], tmp_path: Path) -> None:
    folder, _ = pretrained
    bunch = datasets.load_digits()
    wide = tmp_path / "wide.npz"
    np.savez(wide, features=np.tile(bunch.images, 2)[:, None], label=bunch.target)
    config = {**CNN, "batch_norm": True, "init_from": str(folder), "data_path": str(wide)}
    with pytest.raises(TransferError, match=r"shape \(1, 8, 8\); this data's are \(1, 8, 16\)"):
        last_epoch({**config, "epochs": 1})


def test_what_is_not_a_checkpoint_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(TransferError, match=r"cannot read .*no state\.pt there"):
        read_checkpoint(str(tmp_path))
    (tmp_path / "state.pt").write_bytes(b"not torch")
    with pytest.raises(TransferError, match="is not a built-in trainer's checkpoint"):
        read_checkpoint(str(tmp_path))
    torch.save({"weights": torch.zeros(1)}, tmp_path / "state.pt")
    with pytest.raises(TransferError, match="is not a built-in trainer's checkpoint"):
        read_checkpoint(str(tmp_path / "state.pt"))


@pytest.mark.parametrize(
    ("knobs", "says"),
    [
        ({"freeze": "body"}, "it needs init_from"),
        ({"freeze": True, "init_from": "x"}, "not true or false"),
        ({"init_from": "runs:/abc"}, "write runs:/RUN_ID/checkpoint"),
        ({"init_from": "sweep:"}, "write sweep:NAME"),
        ({"init_from": "https://example.com/x.pt"}, "use a path, s3://"),
        ({"head_lr_mult": 0}, "greater than 0"),
    ],
)
def test_bad_fine_tuning_knobs_are_refused(knobs: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        ClassifierKnobs.model_validate(knobs)


def test_freezing_more_blocks_than_the_network_has_is_one_line(
    pretrained: tuple[Path, TrainerState],
) -> None:
    folder, _ = pretrained
    config = {**CNN, "batch_norm": True, "init_from": str(folder), "freeze": 4, "epochs": 1}
    with pytest.raises(TransferError, match="freeze: 4 blocks, but this cnn has 3 below its head"):
        last_epoch(config)


def test_a_resumed_fine_tuned_trial_goes_on_from_its_own_checkpoint(
    pretrained: tuple[Path, TrainerState], tmp_path: Path
) -> None:
    folder, _ = pretrained
    config = {**CNN, "batch_norm": True, "init_from": str(folder), "freeze": 1, "epochs": 3}
    config |= {"head_lr_mult": 5, "lr_schedule": "cosine"}
    straight = last_epoch(config)
    first = next(iter(run_epochs(config, "classification", None)))
    save_state(first.state(), tmp_path)  # before the generator trains on
    *_, resumed = run_epochs(config, "classification", load_state(tmp_path))
    for key, tensor in straight.model.items():
        assert torch.equal(tensor, resumed.state().model[key]), key


def test_a_model_without_batch_norm_has_one_block_per_weight_layer() -> None:
    model = build_model((1, 8, 8), 10, ClassifierKnobs.model_validate(CNN))
    assert [len(b.parameters) for b in body_blocks(model)] == [2, 2, 2]
    assert isinstance(head_of(model), nn.Linear) and head_of(model).out_features == 10
