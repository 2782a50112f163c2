"""How many GPUs an embedded sweep may use, counted before Ray starts."""

from __future__ import annotations

import pytest

from tuner.engine.session import gpu_count, visible_gpus


@pytest.mark.parametrize(
    ("visible", "count", "seen"),
    [
        (None, 8, 8),
        ("", 8, 0),
        ("0,1", 8, 2),
        ("3", 8, 1),
        ("0,-1,1", 8, 1),  # CUDA reads up to the first entry that names no GPU
        ("-1", 8, 0),
        ("0,1,2,3", 2, 2),
        ("GPU-8f6e5c1a-0000-0000-0000-000000000000", 1, 1),  # by UUID
    ],
)
def test_cuda_visible_devices_limits_the_gpus_counted(
    visible: str | None, count: int, seen: int
) -> None:
    assert visible_gpus(visible, count) == seen


def test_a_machine_without_a_gpu_counts_none() -> None:
    import torch

    assert gpu_count() == torch.cuda.device_count()
