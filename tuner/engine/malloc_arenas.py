"""The driver's C heap in a few arenas, so a long sweep's churn does not grow it.

glibc gives each thread that allocates at the same time as another an arena of its own,
up to 8 per core, and an arena's freed memory is reused only by the threads that land
on it. A sweep's driver runs Ray's core-worker threads, Tune's loop, the tracking
writer's threads and the live table's, each allocating and freeing per trial: their
arenas fill with free space that the others cannot use, and the driver's memory grows
with the number of trials although what it holds does not.

Measured (tuner's driver, 6,000 null trials on 2 cores, each ended trial released,
RSS from about 1,000 to 6,000 trials): 21-29 KB a trial with glibc's default arenas,
7.4 KB with the cap set as the process starts, 7.7 KB with MALLOC_ARENA_MAX=2 in its
environment (what remains is mostly the tracking writer's backlog, which drains at the
sweep's end). Set once Ray had been imported and the sweep had begun, it changed
nothing (24 KB a trial): the threads that churn already had their arenas. So the
`tuner run` and `tuner resume` commands set it before they import Ray, MLflow and
torch; a program calling `run_sweep` itself calls this first, or sets
MALLOC_ARENA_MAX=2. Through `tuner run`, 10,000 null trials: 7.8 KB a trial against 40
with the default arenas, 210 s against 211 (bench/README.md).

Where the C library is not glibc, or the user set MALLOC_ARENA_MAX themselves, nothing
changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

logger = logging.getLogger(__name__)

DRIVER_ARENAS = 2
M_ARENA_MAX = -8  # glibc's malloc.h


def cap_malloc_arenas(arenas: int = DRIVER_ARENAS) -> bool:
    """Limit this process's malloc arenas (glibc only); whether the limit was set."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False  # the user's own setting, read by glibc at the process's start
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: musl and macOS have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_ARENA_MAX, arenas))
    if not done:
        logger.debug("mallopt(M_ARENA_MAX, %d) was refused", arenas)
    return done
