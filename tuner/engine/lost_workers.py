"""A trial handed a reused worker that died with its node restarts; it does not fail.

With actor reuse, Ray Tune keeps the worker of a paused or finished trial for the next
trial that needs the same resources, and hands it over with a `reset` task. Ray learns
that an idle worker died only when it next uses it. So when a node is lost (a spot
preemption) with an idle worker on it, the next trial given that worker finds it dead.

Ray Tune then hears of that one death twice: its worker handler (`_actor_failed`)
restarts the trial from its last checkpoint, and the `reset` task's own handler, called
next with the same exception, fails the restarted trial for good (it is PENDING again,
which Ray Tune never recovers) and counts a second failure. Left in `_resetting_trials`,
the trial would also pass for one being handed a worker. PBT makes this common: every
exploit pauses a trial and leaves its worker idle. Seen on the loopback cluster: 1 of 4
PBT trials FAILED, just after "restarting from its last checkpoint", in about 1 of 3
sweeps that lost a node.

`recover_trials_on_lost_workers()` has Ray Tune handle that death once: the trial
restarts, counted against `max_failures` as any lost worker is (not at all when its
node was drained as preempted).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from ray.exceptions import RayActorError
from ray.tune.execution.tune_controller import TuneController
from ray.tune.experiment import Trial

logger = logging.getLogger(__name__)

# What the patch relies on in Ray Tune's controller (checked, so that a Ray that
# changed them keeps its own behaviour instead of breaking the sweep).
# Ray reports a worker's death to the worker's handler and then to each of its tasks'
# handlers, all with the same exception: marked on it, the second report is dropped.
_RECOVERED = "_tuner_recovered_trial"
_NEEDED = ("_trial_task_failure", "_set_trial_status", "_maybe_reuse_cached_actor")


def recover_trials_on_lost_workers() -> bool:
    """Patch Ray Tune's controller once per process; False when this Ray lacks what
    the patch needs (Ray's own behaviour then stays)."""
    if not all(hasattr(TuneController, name) for name in _NEEDED):
        logger.debug("Ray Tune's controller changed: a lost reused worker ends its trial")
        return False
    original = TuneController._trial_task_failure
    if getattr(original, "_tuner_recovers_lost_workers", False):
        return True

    @functools.wraps(original)
    def _trial_task_failure(self: Any, trial: Trial, exception: Exception) -> None:
        if isinstance(exception, RayActorError):
            if getattr(exception, _RECOVERED, None) == trial.trial_id:
                return  # the reset's own report of a death already handled
            resetting = getattr(self, "_resetting_trials", None)
            if isinstance(resetting, set) and trial in resetting:
                # Its reset will never answer: left in `resetting`, the restarted
                # trial would pass for one being handed a worker, and never get one.
                resetting.discard(trial)
                setattr(exception, _RECOVERED, trial.trial_id)
                if trial.status == Trial.PENDING:  # not through Ray's _actor_failed
                    self._set_trial_status(trial, Trial.RUNNING)
        original(self, trial, exception)

    _trial_task_failure._tuner_recovers_lost_workers = True  # type: ignore[attr-defined]
    TuneController._trial_task_failure = _trial_task_failure  # type: ignore[method-assign]
    return True
