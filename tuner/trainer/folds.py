"""Cross-validation (`cv_folds`): a trial trains one model per fold, in lockstep.

Each fold trains as a trial of its own would (its model, optimizer, schedule and
seed; tuner.trainer.loop), on the other folds, validating on its own. After every
epoch the trial reports the mean over folds of each metric under its usual name (what
the sweep's metric, ASHA and Optuna read) and each validation metric's std as
`<metric>_std`.

Early stopping judges the mean validation loss, not each fold's: every fold trains the
same epochs, so every report is a mean over all K models at one epoch, the number the
search compares across trials, and the trial stops on the loss the search sees.

Each fold keeps its own copy of torch's global RNG (dropout masks), swapped in while it
trains, so a fold draws what it would alone and a resumed trial replays exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import torch

from tuner.trainer.checkpoint import TrainerState, as_dict
from tuner.trainer.epoch import EarlyStopping, Epoch
from tuner.trainer.knobs import KNOBS_BY_TASK

# (config, task, resume, fold) -> that fold's epochs: tuner.trainer.loop's segment.
FoldRun = Callable[[dict[str, Any], Any, TrainerState | None, int], Iterator[Epoch]]

# Reported once for the trial, not averaged: the same in every fold, or a total.
SAME_IN_EVERY_FOLD = frozenset({"epoch", "num_params"})
SUMMED = frozenset({"epoch_time_s"})  # what the trial's epoch took: every fold's


def fold_seed(seed: int, fold: int | None) -> int:
    """Fold k's seed: the trial's for fold 0 (and without folds), another for each fold."""
    # Past every seed the knob takes: no fold draws what another trial's fold 0 does.
    return seed + 2**32 * (fold or 0)


def combine(per_fold: list[dict[str, Any]]) -> dict[str, Any]:
    """One epoch's report from its folds' reports: the mean of each metric, and each
    validation metric's std over folds (numpy's, ddof 0) as `<metric>_std`."""
    combined: dict[str, Any] = {}
    for key, first in per_fold[0].items():
        if key in SAME_IN_EVERY_FOLD or not isinstance(first, int | float):
            combined[key] = first
            continue
        values = np.array([metrics[key] for metrics in per_fold], dtype=np.float64)
        combined[key] = float(values.sum() if key in SUMMED else values.mean())
        if key.startswith("val_"):
            combined[f"{key}_std"] = float(values.std())
    return combined


def run_folds(
    run_fold: FoldRun, config: dict[str, Any], task: Any, resume: TrainerState | None
) -> Iterator[Epoch]:
    """The trial's epochs: its folds' epochs, combined. A segment for run_epochs, as
    loop's own: `resume` is a checkpoint this function's epochs made."""
    knobs = KNOBS_BY_TASK[task].model_validate(config)
    count = knobs.cv_folds
    stopper = EarlyStopping(knobs.patience, knobs.min_delta)
    fold_resumes: list[TrainerState | None] = [None] * count
    if resume is not None:
        saved = resume.folds or []
        if len(saved) != count:
            raise ValueError(
                f"the checkpoint holds {len(saved)} folds; this trial trains {count} (cv_folds)"
            )
        fold_resumes = [TrainerState(**fold) for fold in saved]
        stopper = EarlyStopping(**resume.stopper)
    # A fold never stops itself: the trial's stopper, on the mean, stops them all.
    fold_config = {**config, "patience": 0}
    runs = [run_fold(fold_config, task, fold_resumes[k], k) for k in range(count)]
    rngs: list[torch.Tensor | None] = [None] * count  # a fold's first epoch seeds its own
    while True:
        epochs: list[Epoch] = []
        for fold, run in enumerate(runs):
            with _own_rng(rngs, fold):
                epoch = next(run, None)
            if epoch is None:
                return
            epochs.append(epoch)
        metrics = combine([epoch.metrics for epoch in epochs])
        stop = stopper.update(metrics["val_loss"])
        if stop:
            metrics["stop_reason"] = stopper.reason()
        state = partial(_state, epochs, rngs, stopper, knobs.patience)
        yield Epoch(metrics, epochs[0].number, stop, stop or epochs[0].last, state)
        if stop:
            return


def _state(
    epochs: list[Epoch], rngs: list[torch.Tensor | None], stopper: EarlyStopping, patience: int
) -> TrainerState:
    states = []
    for fold, epoch in enumerate(epochs):
        with _own_rng(rngs, fold):  # a fold's state holds its own RNG
            states.append(epoch.state())
    first = states[0]
    return replace(
        first,
        knobs={**first.knobs, "patience": patience},  # the trial's, not its folds' 0
        stopper=stopper.__dict__.copy(),
        folds=[as_dict(state) for state in states],
    )


@contextlib.contextmanager
def _own_rng(rngs: list[torch.Tensor | None], fold: int) -> Iterator[None]:
    """Fold `fold`'s copy of torch's global RNG in place while it runs, then kept."""
    saved = rngs[fold]
    if saved is not None:
        torch.set_rng_state(saved)
    try:
        yield
    finally:
        rngs[fold] = torch.get_rng_state()
