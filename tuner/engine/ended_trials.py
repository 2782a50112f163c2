"""Ended trials leave Ray Tune's driver; the few that the sweep's end and the live table
read stay.

Ray Tune keeps every trial of a run in its controller until the run ends: the `Trial`,
its last result, its metric analysis, its state JSON for the experiment snapshots, and
references from its progress reporter and JSON logger. Measured in a stock Ray Tune
driver on 2 cores (3,000 null trials): RSS grew 42 KB and 199 Python blocks a trial;
with each ended trial taken out of all of them, 5 KB and 34 blocks (bench/README.md).
Taking it out of only the controller's list freed nothing.

A trial that ended (TERMINATED, its actor stopped or cached, its end in an experiment
snapshot) is released unless it is one of the sweep's best so far: the best by the
objective (every tie; with several objectives the Pareto fronts of the trials that
trained to their end and of those ASHA stopped, as `front.best_result` chooses), or one
of the live table's MAX_ROWS best scores. A released trial beaten later is never needed
again; everything else it had is in MLflow already. Failed trials stay (a resume retries
them). What the sweep's end counts of the released ones, and the checkpoints it thins,
stay here, and travel with Ray's experiment state as this callback's state, so that a
resume counts them too.

A seam on Ray Tune's internals (TuneController's trial sets, the per-trial dicts and
sets of Ray's own callbacks): where the controller's changed, nothing is released and
the sweep runs as before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ray import tune

from tuner.engine.front import objective_point
from tuner.search.early_stops import EarlyStops
from tuner.search.pareto import Point, pareto_front
from tuner.search.shared_by_key import SharedByKey
from tuner.spec import SweepSpec
from tuner.spec.objectives import feasible
from tuner.tracking.progress import MAX_ROWS, row_rank
from tuner.tracking.results import as_number

logger = logging.getLogger(__name__)

ENDED = "TERMINATED"
# What the controller must have for a release to be safe; without one, none happens.
CONTROLLER_SEAM = (
    "_trials",
    "_stopped_trials",
    "_trials_to_cache",
    "_trial_metadata",
    "_trial_to_actor",
    "_pending_trials_list",
    "_cached_trial_decisions",
    "_queued_trial_decisions",
    "_callbacks",
)


class EndedTrials(SharedByKey, tune.Callback):  # type: ignore[misc]
    """The sweep's released trials: how many, how many ASHA stopped, and the checkpoints
    the sweep's end thins. Shared by key (an experiment path) as `EarlyStops` is: the
    scheduler that releases and the runner's callback that saves are one ledger."""

    def __init__(self, key: str = "") -> None:
        super().__init__(key)
        self.released = 0
        self.released_early = 0
        self.checkpoints: list[tuple[str, str]] = []  # (trial path, its latest checkpoint)
        self._spec: SweepSpec | None = None  # None: nothing to release (yet, or ever)
        self._early_stops = EarlyStops()
        self._kept: set[Any] = set()
        self._seam_checked = False

    def start(self, spec: SweepSpec, early_stops: EarlyStops) -> EndedTrials:
        """A sweep (or a resume) starts: nothing released yet in this driver; a resume's
        earlier counts come back with Ray's saved state (set_state)."""
        self.released = self.released_early = 0
        self.checkpoints = []
        self._spec, self._early_stops = spec, early_stops
        self._kept = set()
        self._seam_checked = False
        return self

    def get_state(self) -> dict[str, Any]:
        return {
            "released": self.released,
            "released_early": self.released_early,
            "checkpoints": list(self.checkpoints),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.released = int(state.get("released", 0))
        self.released_early = int(state.get("released_early", 0))
        self.checkpoints = [tuple(pair) for pair in state.get("checkpoints", [])]  # type: ignore[misc]

    def counts(self) -> dict[str, int]:
        """Released trials by the live table's status words."""
        finished = self.released - self.released_early
        return {"finished": finished, "stopped (asha)": self.released_early}

    def release_from(self, tune_controller: Any) -> None:
        """Take the ended trials that the sweep's end will not read out of Ray Tune's
        driver. Called by the scheduler as it chooses the next trial: between Ray's
        events, when nothing iterates the controller's collections."""
        controller = getattr(tune_controller, "_tune_controller", tune_controller)
        if self._spec is None or not self._seam_holds(controller):
            return
        stopped = controller._stopped_trials
        if len(stopped) <= len(self._kept):
            return  # nothing ended since the last release
        pool = [trial for trial in stopped if self._releasable(controller, trial)]
        if len(pool) == len(self._kept):
            return  # the ones that ended are not in a snapshot yet
        keep = trials_to_keep(self._spec, self._early_stops, pool)
        gone = [trial for trial in pool if trial not in keep]
        self._kept = keep
        if gone:
            self._forget(controller, set(gone))

    def _seam_holds(self, controller: Any) -> bool:
        if not self._seam_checked:
            self._seam_checked = True
            missing = [name for name in CONTROLLER_SEAM if not hasattr(controller, name)]
            if missing:
                logger.debug("Ray Tune's controller changed (%s): trials stay", missing)
                self._spec = None
        return self._spec is not None

    @staticmethod
    def _releasable(controller: Any, trial: Any) -> bool:
        return (
            trial.status == ENDED
            and trial not in controller._trial_to_actor
            and trial not in controller._trials_to_cache  # its end is in a snapshot
            and trial.trial_id not in controller._cached_trial_decisions
            and trial.trial_id not in controller._queued_trial_decisions
        )

    def _forget(self, controller: Any, gone: set[Any]) -> None:
        for trial in gone:
            controller._stopped_trials.discard(trial)
            controller._trial_metadata.pop(trial.trial_id, None)
            self.released += 1
            self.released_early += int(trial.trial_id in self._early_stops)
            checkpoint = trial.checkpoint
            if checkpoint is not None and trial.path is not None:
                self.checkpoints.append((trial.path, checkpoint.path))
        controller._trials[:] = [t for t in controller._trials if t not in gone]
        controller._pending_trials_list[:] = [
            t for t in controller._pending_trials_list if t not in gone
        ]
        # Ray's own callbacks (its progress reporter, its JSON, CSV and TensorBoard
        # loggers) keep per-trial dicts and sets, some for the whole run.
        for callback in getattr(controller._callbacks, "_callbacks", []):
            if type(callback).__module__.startswith("ray."):
                for holder in list(vars(callback).values()):
                    _drop(holder, gone)


def _drop(holder: Any, gone: set[Any]) -> None:
    """Take the released trials out of a dict or set keyed by trials."""
    if isinstance(holder, dict):
        for trial in gone.intersection(holder):
            value = holder.pop(trial)
            close = getattr(value, "close", None)
            if callable(close):  # a logger's file or writer that the trial's end left open
                close()
    elif isinstance(holder, set):
        holder.difference_update(gone)


def trials_to_keep(spec: SweepSpec, early_stops: EarlyStops, trials: Iterable[Any]) -> set[Any]:
    """Of ended trials, those the sweep's best (front.best_result, pareto_results) and the
    live table's best rows may still be: every trial not among them is beaten by one
    that is, and stays beaten."""
    trials = list(trials)
    keep: set[Any] = set(_best_rows(spec, trials))
    candidates: list[tuple[Any, Point]] = []
    for trial in trials:
        metrics = trial.last_result or {}
        point = objective_point(spec, metrics)
        if point is not None and feasible(spec.constraints, metrics):
            candidates.append((trial, point))
    if not spec.is_multi_objective:
        top = max((point[0] for _, point in candidates), default=None)
        keep.update(trial for trial, point in candidates if point[0] == top)
        return keep
    trained = [(t, p) for t, p in candidates if t.trial_id not in early_stops]
    stopped = [(t, p) for t, p in candidates if t.trial_id in early_stops]
    for pool in (trained, stopped):
        keep.update(pool[i][0] for i in pareto_front([point for _, point in pool]))
    return keep


def _best_rows(spec: SweepSpec, trials: list[Any]) -> list[Any]:
    """The live table's rows among ended trials: the MAX_ROWS it ranks first."""

    def rank(trial: Any) -> float:
        return row_rank(as_number((trial.last_result or {}).get(spec.metric)), spec.mode)

    return sorted(trials, key=rank)[:MAX_ROWS]
