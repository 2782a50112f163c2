"""What a searcher starts from: points to try first and, for Optuna, trials to learn from.

The engine fills it (from the sweep file's `enqueue` and from an earlier sweep read back
from MLflow for `warm_start`); the searchers here only take it in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna


@dataclass(frozen=True)
class StartingPoints:
    # Tried first, in order: each names some params; the searcher samples the rest.
    points: list[dict[str, Any]] = field(default_factory=list)
    # Finished trials of an earlier sweep over this space, for Optuna's sampler.
    history: list[optuna.trial.FrozenTrial] = field(default_factory=list)


NOTHING = StartingPoints()


def seed_study(study: optuna.Study, start: StartingPoints) -> None:
    """Give a fresh study the earlier trials, then queue the points to try first."""
    study.add_trials(start.history)
    for point in start.points:
        # skip_if_exists=False: a point the history holds is still tried, as asked.
        study.enqueue_trial(point, skip_if_exists=False)
