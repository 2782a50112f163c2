"""One driver per sweep experiment at a time.

A `tuner resume` typed while the sweep's own `tuner run` (or another resume) still drives
it restored the same trials beside the live ones: both trained them into the same storage
and the same MLflow runs, each epoch logged twice. The driver holds an advisory lock on a
file in the experiment's folder for as long as it drives it; the kernel lets it go when
the process ends however it ends (SIGKILL included), so a dead driver's sweep resumes.
Local storage only: on S3 (a cluster) the Jobs API's own check guards `tuner resume`.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tuner.engine.experiments import Experiment, NothingToResume

LOCK_FILE = "driver.lock"


class SweepRunning(NothingToResume):
    """Another process drives the experiment now (exit status 1, as nothing to resume)."""


@contextmanager
def driver_lock(experiment: Experiment) -> Iterator[None]:
    if experiment.storage.is_remote:
        yield
        return
    folder = Path(experiment.path)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepRunning(
                f"sweep {experiment.sweep!r} ({experiment.uri}) is running: another tuner "
                "process drives it now; let it finish, or stop it (Ctrl-C) and resume then"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
