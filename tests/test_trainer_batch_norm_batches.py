"""Batch norm and a last batch of one sample: wine's 106 training rows in batches of 15
leave one, and torch's batch norm cannot train on one ("Expected more than 1 value per
channel when training"): the trial failed in its first epoch. That sample now joins the
batch before it; batch_size 1 with batch_norm is refused at `tuner validate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from tests.conftest import run_cli
from tuner.trainer.data import load_splits
from tuner.trainer.knobs import ClassifierKnobs
from tuner.trainer.loop import run_epochs
from tuner.trainer.steps import batches


def epochs(**config: Any) -> list[Any]:
    return list(run_epochs({"dataset": "wine", **config}, "classification", None))


def test_batch_norm_trains_when_the_last_batch_would_hold_one_sample() -> None:
    assert len(load_splits(ClassifierKnobs(dataset="wine"), "classification").train.labels) == 106
    done = epochs(epochs=2, batch_size=15, batch_norm=True, lr_schedule="one_cycle")
    assert [e.number for e in done] == [1, 2]
    state = done[-1].state()
    # 7 optimizer steps an epoch (six of 15, one of 16), and the per-step schedule was
    # sized for them: it ends at its last step, not one short or past it.
    assert all(s["step"] == 14 for s in state.optimizer["state"].values())
    assert state.schedule["last_epoch"] == state.schedule["total_steps"] == 14


def test_without_batch_norm_the_lone_sample_is_a_batch_of_its_own() -> None:
    state = epochs(epochs=1, batch_size=15)[-1].state()
    assert all(s["step"] == 8 for s in state.optimizer["state"].values())


def test_the_lone_sample_joins_the_batch_before_and_its_step() -> None:
    order = torch.arange(106)
    sizes = [(len(index), share, step) for index, share, step in batches(order, 15, 2, 0, 2)]
    assert [size for size, _, _ in sizes] == [15] * 6 + [16]
    # Groups of two batches: the merged batch is the last group, and steps alone.
    assert sizes[-2:] == [(15, 0.5, True), (16, 1.0, True)]
    assert torch.equal(torch.cat([i for i, _, _ in batches(order, 15, 2, 0, 2)]), order)
    # One group of all seven: one step, each batch weighed by its share of the 106.
    whole = list(batches(order, 15, 7, 0, 2))
    assert [step for _, _, step in whole] == [False] * 6 + [True]
    assert sum(share for _, share, _ in whole) == pytest.approx(1.0)
    assert whole[-1][1] == pytest.approx(16 / 106)


def test_batch_size_one_with_batch_norm_is_refused_at_validate(tmp_path: Path) -> None:
    spec = {
        "name": "bn-one",
        "trainable": "builtin:classifier",
        "metric": "val_accuracy",
        "mode": "max",
        "params": {"batch_size": {"type": "int", "low": 1, "high": 32}},
        "config": {"dataset": "wine", "batch_norm": True, "epochs": 1},
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    out = run_cli("validate", "sweep.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: sweep.yaml: params.batch_size.low: batch_norm needs batch_size 2 or more: "
        "it cannot train on one sample (knob 'batch_size' of builtin:classifier)"
    ]
    with pytest.raises(ValueError, match="batch_norm needs batch_size 2 or more"):
        ClassifierKnobs(batch_norm=True, batch_size=1)
