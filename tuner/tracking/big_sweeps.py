"""What a report draws of a sweep of thousands of trials, in seconds rather than hours.

Two of the report's pictures grow faster than the sweep:
- fANOVA importances fit random forests whose marginal variances cost about the square
  of the trials: 5 s of CPU at 250 trials, 27 s at 1,000, far more at 10,000 (this
  machine, 3 params, Optuna's trees 64 deep). They are judged on a seeded random sample
  of the trials instead, the same every time the report is drawn, by shallower trees
  (`importance_evaluator`), and computed once for the table and the plot (Optuna's
  plot would fit its forests again).
- Learning curves draw one line and one legend entry per trial: a legend of 1,500
  entries took 13 s to lay out, and 10,000 lines are one blot. They show the best
  trials and a seeded sample of the rest, and no legend past a readable few.
The other plots (history, parallel coordinates, contour) take about a second each at
10,000 trials and draw every trial.
"""

from __future__ import annotations

import functools
import importlib
import random
import threading
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

# At most this many finished trials are judged for importances.
IMPORTANCE_TRIALS = 500
# How deep fANOVA's trees grow (importance_evaluator says why not Optuna's 64).
FANOVA_MAX_DEPTH = 8
# Learning curves: the best this many trials, and as many again at random.
BEST_CURVES = 100
# Trials named in a plot's legend, at most.
LEGEND_ENTRIES = 20


def judged_on_sample(study: optuna.Study, limit: int = IMPORTANCE_TRIALS) -> optuna.Study:
    """`study` itself, or a study of `limit` of its finished trials chosen at random
    (seeded) when it has more."""
    finished = study.get_trials(states=[TrialState.COMPLETE], deepcopy=False)
    if len(finished) <= limit:
        return study
    return _study_of(study, random.Random(0).sample(finished, limit))


def curves_drawn(study: optuna.Study, best: int = BEST_CURVES) -> tuple[optuna.Study, str]:
    """The trials whose learning curves are drawn, and what the title says of them
    ("" when every trial's curve is drawn)."""
    trials = study.get_trials(deepcopy=False)
    if len(trials) <= 2 * best:
        return study, ""
    finished = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    ranked = sorted(finished, key=lambda t: float(t.value or 0), reverse=maximize)[:best]
    chosen = {t.number for t in ranked}
    rest = [t for t in trials if t.number not in chosen]
    picked = ranked + random.Random(0).sample(rest, min(best, len(rest)))
    drawn = sorted(picked, key=lambda t: t.number)
    shown = f"{len(drawn)} of {len(trials)} trials: the best {len(ranked)} and others at random"
    return _study_of(study, drawn), shown


def _study_of(study: optuna.Study, trials: Sequence[FrozenTrial]) -> optuna.Study:
    chosen = optuna.create_study(study_name=study.study_name, directions=study.directions)
    chosen.add_trials(trials)
    return chosen


def importance_evaluator() -> Any:
    """fANOVA (random forests, seeded: the same sweep gives the same report): with the
    few finished trials of an ASHA sweep, Optuna's default PED-ANOVA, which compares the
    top quantile with the rest, ranked a param that does not matter first.

    Trees at most FANOVA_MAX_DEPTH deep, not Optuna's 64: fANOVA's marginal variances
    walk every leaf, and on a noisy metric the deep trees grow a leaf per trial or two.
    Measured on 500 trials of 4 and 8 params (a noisy metric with an interaction): 5.4-6.1 s
    at depth 64, 1.4-1.9 s at depth 8, the importances equal within 0.001. Made here, not
    at import, as `known_importances` says."""
    from optuna.importance import FanovaImportanceEvaluator

    return FanovaImportanceEvaluator(seed=0, max_depth=FANOVA_MAX_DEPTH)


def known_importances(importances: dict[str, float]) -> Any:
    """An Optuna importance evaluator that hands back importances already judged, for
    Optuna's plot, so that it does not fit its forests a second time. Made here, not at
    import: `optuna.importance` imports scikit-learn (2 s), which a report can import
    while it waits on the tracking server (`prefetch_importances`)."""
    return _known_importances_class()(importances)


@functools.cache
def _known_importances_class() -> type:
    from optuna.importance import BaseImportanceEvaluator

    class KnownImportances(BaseImportanceEvaluator):  # type: ignore[misc]
        def __init__(self, importances: dict[str, float]) -> None:
            self._importances = importances

        def evaluate(
            self,
            study: optuna.Study,
            params: list[str] | None = None,
            *,
            target: Callable[[FrozenTrial], float] | None = None,
        ) -> dict[str, float]:
            names = params if params is not None else list(self._importances)
            return {name: self._importances[name] for name in names if name in self._importances}

    return KnownImportances


def prefetch_importances() -> threading.Thread:
    """Import Optuna's importance evaluators (scikit-learn's forests, 2 s) in a thread,
    to overlap with reading the sweep back: that read waits on the tracking server. A
    later import in the main thread waits for this one, as Python's import lock has it."""
    thread = threading.Thread(
        target=importlib.import_module, args=("optuna.importance",), daemon=True
    )
    thread.start()
    return thread
