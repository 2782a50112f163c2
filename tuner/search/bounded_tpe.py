"""TPE over a bounded history: the best trials of the whole study and the latest ones.

Optuna's TPE reads every trial of the study on each suggestion, in Python loops (each
trial's params, its rank, its kernel), so its time per suggestion grows with the
study: measured 2.2 ms at 100 trials and 37.6 ms at 5,000 (bench/README.md, "Scale").
Optuna 5.1 has no option that bounds it (`n_startup_trials` only delays TPE; `gamma`
and `weights` are deprecated). Here TPE models, on each suggestion:

- the latest `history` finished trials,
- the best `GOOD_TRIALS` of all the others (by TPE's own ranking: complete by value,
  then pruned by their last intermediate value, then infeasible),
- every running trial (the constant liar counts them as bad).

TPE's "good" density is built from its best min(10%, 25) trials: from 250 finished
trials on, exactly the best 25 of the whole study, which this window always holds, so
that density is the same as unbounded TPE's. What changes is the "bad" density, which
forgets trials older than the window; TPE's default weights already fade those (a ramp
from 1/n for the oldest). A sweep with fewer finished trials than `history` samples
exactly as TPESampler does.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Container, Sequence
from typing import TYPE_CHECKING, Any, cast

from optuna.samplers import TPESampler
from optuna.samplers._tpe.sampler import _split_trials
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study

# TPE's default gamma (optuna.samplers._tpe.sampler.default_gamma) takes the best 10% of
# the finished trials as good, at most 25.
GOOD_TRIALS = 25
# Below 250 finished trials TPE's good set is under 25 and depends on the count: a
# window that small would change which trials are good. (The sweep file's lower bound.)
MIN_HISTORY = 250


class BoundedTPESampler(TPESampler):
    """TPESampler that models the best `GOOD_TRIALS` and the latest `history` trials."""

    def __init__(self, history: int, **kwargs: Any) -> None:
        if history < MIN_HISTORY:
            raise ValueError(f"history must be >= {MIN_HISTORY} (got {history})")
        super().__init__(**kwargs)
        self._history = history
        # The best of the trials older than the window, the number up to which trials
        # were weighed for it, and those that were still running then (weighed once
        # they finish): each trial is weighed once, whatever order trials finish in.
        self._good_before: list[FrozenTrial] = []
        self._weighed_to = -1
        self._behind: set[int] = set()

    def _sample(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        window = cast("Study", _Windowed(study, lambda trials: self.bounded(study, trials)))
        result: dict[str, Any] = super()._sample(window, trial, search_space)
        return result

    def bounded(self, study: Study, trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
        """What TPE sees of `trials` (the study's, in trial-number order): the running
        ones, the latest `history` finished ones, and the best that came before them.
        Reads the window and the trials new since the last call, never the whole list."""
        latest: list[FrozenTrial] = []
        running: list[FrozenTrial] = []
        index = len(trials)
        while index > 0 and len(latest) < self._history:
            index -= 1
            (running if trials[index].state == TrialState.RUNNING else latest).append(trials[index])
        if len(latest) < self._history:
            return list(trials)  # the whole study fits: TPE as Optuna's
        first = trials[index].number  # the window's oldest trial
        passed = trials[_position(trials, self._weighed_to + 1, index) : index]
        left = [t for t in passed if t.state != TrialState.RUNNING]
        self._behind.update(t.number for t in passed if t.state == TrialState.RUNNING)
        self._weighed_to = max(self._weighed_to, first - 1)
        for number in sorted(self._behind):
            at = _position(trials, number, index)
            if at == index or trials[at].number != number:  # failed: not TPE's to see
                self._behind.discard(number)
            elif trials[at].state == TrialState.RUNNING:
                running.append(trials[at])
            else:
                left.append(trials[at])
                self._behind.discard(number)
        if left:
            # TPE's own split ranks them, with its own rules for pruned and infeasible
            # trials; a total order, so the best of (best so far + new) is the best of all.
            self._good_before = _split_trials(study, self._good_before + left, GOOD_TRIALS)[0]
        return sorted([*self._good_before, *latest, *running], key=_number)


def _number(trial: FrozenTrial) -> int:
    return trial.number


def _position(trials: Sequence[FrozenTrial], number: int, end: int) -> int:
    """Where trial `number` is (or would be) in trials[:end], in number order."""
    return bisect.bisect_left(trials, number, 0, end, key=_number)


class _Windowed:
    """The study as TPE's sampling reads it: its trials bounded, all else its own."""

    def __init__(
        self, study: Study, bound: Callable[[Sequence[FrozenTrial]], list[FrozenTrial]]
    ) -> None:
        self._study = study
        self._bound = bound

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        return self._bound(trials)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)
