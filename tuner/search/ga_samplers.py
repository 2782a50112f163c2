"""Optuna's genetic samplers (NSGA-II, NSGA-III) in a form Ray Tune can save.

Optuna 5.1's `BaseGASampler` keeps a `threading.Lock`, and Ray Tune pickles the searcher
with its sampler when the Tuner is made and at every experiment snapshot: a sweep with
`sampler: nsga2` or `nsga3` ended as it started, in "cannot pickle '_thread.lock'
object". The lock guards the sampler's caches inside one process; a sampler unpickled
in another (a resume) gets a lock of its own.
"""

from __future__ import annotations

import threading
from typing import Any

import optuna


class _LockLeftOut:
    """Pickles without the lock, and makes a new one when unpickled."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()


# Named as Optuna's: the generation's keys in a persistent study's attributes derive from
# the class name (BaseGASampler.__init_subclass__), so a study Optuna's own sampler began
# goes on here and the other way round.
class NSGAIISampler(_LockLeftOut, optuna.samplers.NSGAIISampler):
    pass


class NSGAIIISampler(_LockLeftOut, optuna.samplers.NSGAIIISampler):
    pass
