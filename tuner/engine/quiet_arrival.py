"""Ray's INFO lines in a trial's worker, kept off the terminal from the worker's start.

A trial's wrapper (tuner.engine.user_code) quiets Ray's loggers when the trial starts,
but Ray restores a resumed or restarted trial from its checkpoint before that: its
worker logged "Restored on 127.0.0.1 from checkpoint: Checkpoint(...)" at INFO, one
line per trial, prefixed with the worker's pid, through `tuner resume`'s table. An
embedded Ray's workers get no setup hook, since a runtime env would cost them the
prestarted worker processes (tuner.engine.prestarted_workers). The first thing a
trial's worker does with tuner's code is unpickle the trainable, so a marker carried
inside it (in the wrapper's closure, or on the wrapper class) quiets the worker then.
"""

from __future__ import annotations

from typing import Any

from tuner.engine.session import quiet_worker_logs


class QuietArrival:
    """Held by a trainable's wrapper: unpickled in a Ray worker, it quiets the worker's
    Ray Tune and Ray Train loggers; `now()` quiets them where the trial runs, as well."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_arrived, ())

    def now(self) -> None:
        quiet_worker_logs()


def _arrived() -> QuietArrival:
    """Run by pickle where the trainable arrives. Only a worker is quieted: the driver
    unpickles the trainable too (Ray's registry), and its loggers are its own."""
    import ray

    if ray._private.worker.global_worker.mode == ray.WORKER_MODE:  # Ray keeps it private
        quiet_worker_logs()
    return QuietArrival()
