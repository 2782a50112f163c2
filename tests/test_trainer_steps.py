"""Optimizer steps: gradient accumulation, and the cyclic schedule's modes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tuner.trainer.knobs import ClassifierKnobs
from tuner.trainer.optim import build_optimizer, build_schedule


def cyclic_rates(mode: str, cycles: int) -> list[float]:
    """The lr of every optimizer step over `cycles` cycles of 8 steps (4 up, 4 down)."""
    k = ClassifierKnobs(
        lr=0.1, epochs=2 * cycles, lr_schedule="cyclic", cycle_epochs=2, cyclic_mode=mode
    )
    optimizer = build_optimizer([nn.Parameter(torch.zeros(1))], k)
    schedule, per_step = build_schedule(optimizer, k, steps_per_epoch=4)
    assert per_step
    rates = []
    for _ in range(8 * cycles):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


def test_triangular2_halves_the_cycles_height_every_cycle() -> None:
    rates = cyclic_rates("triangular2", cycles=3)
    peaks = [max(rates[c * 8 : (c + 1) * 8]) for c in range(3)]
    # Height above the floor lr/10: 0.09, 0.045, 0.0225.
    assert [p - 0.01 for p in peaks] == pytest.approx([0.09, 0.045, 0.0225])
    assert [rates[c * 8 + 4] for c in range(3)] == peaks  # still at mid-cycle
    assert min(rates) == pytest.approx(0.01) and rates[8] == pytest.approx(0.01)


def test_triangular_is_the_default_and_repeats_its_cycle() -> None:
    assert ClassifierKnobs().cyclic_mode == "triangular"
    rates = cyclic_rates("triangular", cycles=3)
    assert rates[8:16] == pytest.approx(rates[:8])
    assert rates[16:] == pytest.approx(rates[:8])
