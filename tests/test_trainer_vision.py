"""torchvision bodies (`model: resnet18`...): built without weights, ImageNet-style
weights only from a file the user names, a new head for the data's classes, `freeze`
counting the stem and the stages. Where torchvision does not import beside this torch
(the CPU wheel CI installs), the network tests skip and `tuner validate` says why in
one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from pydantic import ValidationError

from tests.conftest import run_cli
from tuner.trainer.knobs import TORCHVISION_BLOCKS, ClassifierKnobs
from tuner.trainer.vision import torchvision_problem

MISSING = torchvision_problem("resnet18")
needs_torchvision = pytest.mark.skipif(MISSING is not None, reason=f"torchvision: {MISSING}")


def test_pretrained_weights_belong_to_a_torchvision_model() -> None:
    with pytest.raises(ValidationError, match="pretrained_weights are a torchvision model's"):
        ClassifierKnobs(model="cnn", pretrained_weights="w.pth")
    knobs = ClassifierKnobs(model="resnet18", pretrained_weights="w.pth", freeze=4)
    assert knobs.body_blocks == 5


@pytest.mark.skipif(MISSING is None, reason="torchvision imports here")
def test_validate_says_in_one_line_when_torchvision_cannot_build_the_model(
    tmp_path: Path,
) -> None:
    sweep = {
        "name": "vision",
        "trainable": "builtin:classifier",
        "metric": "val_accuracy",
        "mode": "max",
        "config": {"model": "resnet18"},
        "params": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2}},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep))
    done = run_cli("validate", "s.yaml", cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "config.model: 'resnet18' needs torchvision, built for this torch" in done.stderr


def trained(config: dict[str, Any]) -> Any:
    from tuner.trainer.loop import run_epochs

    *_, last = run_epochs(config, "classification", None)
    return last.state()


@needs_torchvision
@pytest.mark.parametrize("name", sorted(TORCHVISION_BLOCKS))
def test_each_body_builds_with_a_new_head_and_its_blocks(name: str) -> None:
    from tuner.trainer.models import build_model
    from tuner.trainer.transfer import body_blocks, head_of

    model = build_model((3, 32, 32), 7, ClassifierKnobs(model=name))  # type: ignore[arg-type]
    assert len(body_blocks(model)) == TORCHVISION_BLOCKS[name]
    assert head_of(model).out_features == 7
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 7)


@needs_torchvision
def test_a_resnet_trains_on_grey_digits() -> None:
    state = trained({"model": "resnet18", "epochs": 2, "lr": 3e-3})
    assert state.epoch == 2 and state.model["net.fc.weight"].shape == (10, 512)


@pytest.fixture
def weights_file(tmp_path: Path) -> Path:
    """A torchvision resnet18's own state dict, as the ImageNet weights file would be."""
    import torchvision

    torch.manual_seed(7)
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


@needs_torchvision
def test_pretrained_weights_load_into_the_body_and_freeze_keeps_them(weights_file: Path) -> None:
    saved = torch.load(weights_file, weights_only=True)
    config = {"model": "resnet18", "pretrained_weights": str(weights_file), "epochs": 1}
    state = trained({**config, "freeze": "body", "lr": 1e-2})
    for key, tensor in saved.items():
        if key.startswith("fc."):
            assert state.model[f"net.{key}"].shape[0] == 10  # a new head for 10 digits
        else:  # weights, and the batch norms' running statistics, as loaded
            assert torch.equal(state.model[f"net.{key}"], tensor), key
    assert not torch.equal(state.model["net.fc.weight"][:, :5], saved["fc.weight"][:10, :5])


@needs_torchvision
def test_weights_of_another_network_are_one_line(tmp_path: Path) -> None:
    import torchvision

    from tuner.trainer.vision import TransferWeightsError

    path = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    with pytest.raises(
        TransferWeightsError,
        match=r"layer1\.0\.conv1\.weight: \(64, 64, 1, 1\) there, \(64, 64, 3, 3\) here",
    ):
        trained({"model": "resnet18", "pretrained_weights": str(path), "epochs": 1})


def test_a_weights_file_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    from tuner.engine.pretrained import prepare_init_from
    from tuner.spec import SpecError, parse_spec

    sweep = {
        "name": "vision",
        "trainable": "builtin:classifier",
        "metric": "val_accuracy",
        "mode": "max",
        "config": {"model": "resnet18", "pretrained_weights": str(tmp_path / "nope.pth")},
        "params": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2}},
    }
    with pytest.raises(SpecError) as caught:
        prepare_init_from(parse_spec(sweep))
    assert caught.value.key == "config.pretrained_weights"
    assert caught.value.problem == f"{tmp_path / 'nope.pth'}: file not found"
    (tmp_path / "w.pth").write_bytes(b"")
    relative = {**sweep, "config": {"model": "resnet18", "pretrained_weights": "w.pth"}}
    import os

    os.chdir(tmp_path)
    prepared = prepare_init_from(parse_spec(relative))
    assert prepared.config["pretrained_weights"] == str(tmp_path / "w.pth")
