"""A trial's data held on its GPU: copied there once, not one batch at a time.

A small model on a GPU is launch-bound: each step's kernels take well under a
millisecond, and copying the batch from the CPU (plus augmenting it there) is a good
part of the step. With the training and validation data on the device, a batch is an
index into tensors already there, and the augmentations run there too. The random
draws that decide batch order and augmentations still come from the epoch's CPU
generator, so a trial draws the same batches and augmentations either way, and a
resumed trial replays them.

`data_on_device: auto` copies the data when it takes at most FREE_MEMORY_SHARE of the
GPU's free memory when the trial starts: trials packed on one GPU each hold a copy, and
the model's activations need the rest.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tuner.trainer.knobs import TrainerKnobs

FREE_MEMORY_SHARE = 1 / 8


def fits(data_bytes: int, free_bytes: int) -> bool:
    """Whether `auto` puts data of `data_bytes` on a device with `free_bytes` free."""
    return data_bytes <= free_bytes * FREE_MEMORY_SHARE


def data_device(knobs: TrainerKnobs, device: torch.device, data_bytes: int) -> torch.device:
    """Where a trial training on `device` keeps data of `data_bytes`: there or the CPU."""
    if device.type != "cuda" or knobs.data_on_device is False:
        return torch.device("cpu")
    if knobs.data_on_device is True:
        return device
    free, _ = torch.cuda.mem_get_info(device)
    return device if fits(data_bytes, free) else torch.device("cpu")


def nbytes(*tensors: Tensor) -> int:
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


def placed(
    train: tuple[Tensor, Tensor], val_features: Tensor, knobs: TrainerKnobs, device: torch.device
) -> tuple[tuple[Tensor, Tensor], Tensor]:
    """The training split and the validation features where the trial keeps them. The
    validation labels stay on the CPU, where the outputs are scored."""
    where = data_device(knobs, device, nbytes(*train, val_features))
    if where.type == "cpu":
        return train, val_features
    features, labels = train
    return (features.to(where), labels.to(where)), val_features.to(where)
