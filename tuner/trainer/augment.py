"""Training-batch augmentation: shift, flip, cutout and input noise; mixup of pairs.

Applied to training batches only, never to validation or test data. Every draw comes
from the generator passed in (a CPU one), so a resumed trial replays the same
augmentations; the draws are small and move to the batch's device, where the images
are changed (tuner.trainer.device_data).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from tuner.trainer.knobs import TrainerKnobs


def random_shift(images: Tensor, max_pixels: int, generator: torch.Generator) -> Tensor:
    """Shift each image by up to `max_pixels` in x and y, filling with zeros."""
    if max_pixels == 0:
        return images
    n, channels, height, width = images.shape
    device = images.device
    padded = torch.nn.functional.pad(images, (max_pixels,) * 4)
    offsets = torch.randint(0, 2 * max_pixels + 1, (n, 2), generator=generator).to(device)
    # One gather for the batch (not a slice per image: a kernel launch each on a GPU):
    # image i is the window of `padded` at rows dy_i.., columns dx_i..
    rows = offsets[:, 0, None] + torch.arange(height, device=device)  # (n, H)
    cols = offsets[:, 1, None] + torch.arange(width, device=device)  # (n, W)
    return padded[
        torch.arange(n, device=device)[:, None, None, None],
        torch.arange(channels, device=device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


def random_flip(images: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = (torch.rand(len(images), generator=generator) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def cutout(images: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Zero one `size` x `size` square per image, at a random place (it may overhang)."""
    if size == 0:
        return images
    n, _, height, width = images.shape
    device = images.device
    centers_y = torch.randint(0, height, (n,), generator=generator).to(device)
    centers_x = torch.randint(0, width, (n,), generator=generator).to(device)
    rows = torch.arange(height, device=device)[None, :, None]
    cols = torch.arange(width, device=device)[None, None, :]
    top, left = (centers_y - size // 2)[:, None, None], (centers_x - size // 2)[:, None, None]
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return images.masked_fill(inside[:, None], 0.0)


def augment(features: Tensor, knobs: TrainerKnobs, generator: torch.Generator) -> Tensor:
    """The per-sample augmentations the knobs ask for (images get the spatial ones)."""
    if features.dim() == 4:
        features = random_shift(features, knobs.random_shift, generator)
        if knobs.random_flip:
            features = random_flip(features, generator)
        features = cutout(features, knobs.cutout, generator)
    if knobs.input_noise:
        noise = torch.randn(features.shape, generator=generator) * knobs.input_noise
        features = features + noise.to(features.device)
    return features


@dataclass(frozen=True)
class Mixed:
    features: Tensor
    labels: Tensor  # first label of each pair
    partner_labels: Tensor  # second label of each pair
    weight: float  # the share of the first: loss = w * L(first) + (1 - w) * L(second)


def mixup(features: Tensor, labels: Tensor, alpha: float, generator: torch.Generator) -> Mixed:
    """Mix each sample with a random partner: x = w x_i + (1 - w) x_j, w ~ Beta(alpha, alpha)."""
    # torch's Beta takes no generator; a seed drawn from ours keeps mixup replayable.
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    weight = float(np.random.default_rng(seed).beta(alpha, alpha))
    order = torch.randperm(len(labels), generator=generator).to(features.device)
    mixed = weight * features + (1 - weight) * features[order]
    return Mixed(mixed, labels, labels[order], weight)
