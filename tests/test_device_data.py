"""Data held on the trial's device: where it goes, and the same draws wherever it is."""

from __future__ import annotations

from typing import Literal

import pytest
import torch
from pydantic import ValidationError

from tuner.trainer.augment import augment, random_shift
from tuner.trainer.device_data import FREE_MEMORY_SHARE, data_device, fits, nbytes, placed
from tuner.trainer.knobs import ClassifierKnobs


def shifted_one_by_one(images: torch.Tensor, pixels: int, seed: int) -> torch.Tensor:
    """The shift as it was: a slice per image (the reference for the batched gather)."""
    n, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (pixels,) * 4)
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.randint(0, 2 * pixels + 1, (n, 2), generator=generator)
    return torch.stack(
        [padded[i, :, y : y + height, x : x + width] for i, (y, x) in enumerate(offsets.tolist())]
    )


@pytest.mark.parametrize("pixels", [1, 3, 8])
def test_the_batched_shift_moves_each_image_as_a_slice_would(pixels: int) -> None:
    images = torch.randn(17, 3, 8, 6)
    batched = random_shift(images, pixels, torch.Generator().manual_seed(5))
    assert torch.equal(batched, shifted_one_by_one(images, pixels, 5))


def test_augmentations_draw_the_same_from_the_same_seed() -> None:
    knobs = ClassifierKnobs(random_shift=2, random_flip=True, cutout=3, input_noise=0.1)
    images = torch.randn(9, 1, 8, 8)
    first = augment(images, knobs, torch.Generator().manual_seed(1))
    again = augment(images, knobs, torch.Generator().manual_seed(1))
    assert torch.equal(first, again)
    assert not torch.equal(first, images)


def test_auto_takes_the_data_when_it_fits_in_its_share_of_free_memory() -> None:
    free = 8 * 2**30
    assert fits(int(free * FREE_MEMORY_SHARE), free)
    assert not fits(int(free * FREE_MEMORY_SHARE) + 1, free)


@pytest.mark.parametrize("setting", ["auto", True, False])
def test_on_the_cpu_the_data_stays_where_it_is(setting: bool | Literal["auto"]) -> None:
    knobs = ClassifierKnobs(data_on_device=setting)
    cpu = torch.device("cpu")
    assert data_device(knobs, cpu, 10) == cpu
    train = (torch.zeros(4, 3), torch.zeros(4, dtype=torch.int64))
    val = torch.zeros(2, 3)
    (features, labels), val_features = placed(train, val, knobs, cpu)
    assert features is train[0] and labels is train[1] and val_features is val
    assert nbytes(*train, val) == 4 * 3 * 4 + 4 * 8 + 2 * 3 * 4


def test_the_knob_takes_auto_true_or_false_only() -> None:
    assert ClassifierKnobs.model_validate({"data_on_device": "true"}).data_on_device is True
    with pytest.raises(ValidationError):
        ClassifierKnobs.model_validate({"data_on_device": "sometimes"})
