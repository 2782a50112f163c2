"""Optimizer steps: gradient accumulation, and the cyclic schedule's modes."""

from __future__ import annotations

import math
from typing import Any, Literal

import pytest
import torch
from torch import nn

from tuner.trainer.checkpoint import TrainerState
from tuner.trainer.data import load_splits
from tuner.trainer.knobs import ClassifierKnobs
from tuner.trainer.loop import run_epochs
from tuner.trainer.optim import build_optimizer, build_schedule


def first_epoch(**config: Any) -> TrainerState:
    """The trainer's state after one epoch on wine (106 training rows)."""
    return next(
        run_epochs({"dataset": "wine", "epochs": 1, **config}, "classification", None)
    ).state()


def test_accumulating_two_batches_is_one_batch_twice_as_big_for_plain_sgd() -> None:
    # 106 rows: 14 batches of 8 in 7 groups of 16, the last group 10 rows (8 + 2), the
    # same rows as the last batch of 16: every step sees the same samples, the same mean.
    assert len(load_splits(ClassifierKnobs(dataset="wine"), "classification").train.labels) == 106
    plain = {"optimizer": "sgd", "lr": 0.3, "hidden": 16}
    accumulated = first_epoch(**plain, batch_size=8, accumulate_steps=2).model
    big_batch = first_epoch(**plain, batch_size=16).model
    small_batch = first_epoch(**plain, batch_size=8).model
    for name, weights in big_batch.items():
        assert torch.allclose(accumulated[name], weights, atol=1e-6), name
    # Not a test that proves nothing: batches of 8 without accumulation end elsewhere.
    assert any(not torch.allclose(small_batch[n], w, atol=1e-3) for n, w in big_batch.items())


@pytest.mark.parametrize("accumulate_steps", [1, 3, 4])
def test_the_optimizer_steps_once_per_group_of_batches(accumulate_steps: int) -> None:
    state = first_epoch(
        batch_size=10, accumulate_steps=accumulate_steps, lr_schedule="cyclic", cycle_epochs=1
    )
    steps = math.ceil(11 / accumulate_steps)  # 106 rows: 11 batches of 10
    assert all(s["step"] == steps for s in state.optimizer["state"].values())  # Adam's count
    # The per-step schedule moved with the optimizer, not with the batches.
    assert state.schedule["last_epoch"] == steps


def test_accumulate_steps_must_be_a_positive_integer() -> None:
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="accumulate_steps"):
            ClassifierKnobs(accumulate_steps=bad)  # type: ignore[arg-type]


def cyclic_rates(mode: Literal["triangular", "triangular2"], cycles: int) -> list[float]:
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


def test_a_resumed_run_with_accumulation_and_a_cyclic_rate_ends_where_a_straight_one_does() -> None:
    config = {"dataset": "wine", "epochs": 3, "batch_size": 10, "accumulate_steps": 3,
              "lr_schedule": "cyclic", "cycle_epochs": 1.5, "dropout": 0.2}  # fmt: skip
    straight = [epoch.state() for epoch in run_epochs(config, "classification", None)][-1]
    first = next(run_epochs(config, "classification", None)).state()
    resumed = [epoch.state() for epoch in run_epochs(config, "classification", first)][-1]
    assert resumed.epoch == straight.epoch == 3
    for name, weights in straight.model.items():
        assert torch.equal(resumed.model[name], weights), name
    assert resumed.schedule["last_epoch"] == straight.schedule["last_epoch"] == 3 * 4
