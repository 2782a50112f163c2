"""The driver caps glibc's malloc arenas before Ray's threads start: threads that allocate
at once then share two arenas instead of one each, so a long sweep's churn cannot spread
its free memory over a dozen heaps. Counted by glibc itself (`malloc_info`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

# Twelve threads allocate at once, then glibc reports its heaps (one per arena).
CHURN = """
import ctypes, ctypes.util, os, sys, tempfile, threading
from tuner.engine.malloc_arenas import cap_malloc_arenas
capped = cap_malloc_arenas() if sys.argv[1] == "capped" else False
barrier = threading.Barrier(12)
def churn():
    barrier.wait()
    for _ in range(1000):
        blocks = [bytearray(4096) for _ in range(20)]
        del blocks
threads = [threading.Thread(target=churn) for _ in range(12)]
for thread in threads: thread.start()
for thread in threads: thread.join()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fdopen.restype = ctypes.c_void_p
libc.fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fflush.argtypes = [ctypes.c_void_p]
with tempfile.TemporaryFile() as out:
    stream = libc.fdopen(os.dup(out.fileno()), b"w")
    libc.malloc_info(0, stream)
    libc.fflush(stream)
    out.seek(0)
    print(capped, out.read().decode().count("<heap nr="))
"""


def heaps(mode: str, **env: str) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", CHURN, mode],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    capped, count = done.stdout.split()
    return capped, int(count)


@pytest.fixture(scope="module")
def glibc() -> None:
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        version = ""
    if "glibc" not in version:
        pytest.skip("the C library is not glibc: there is no arena to cap")


def test_threads_allocating_at_once_share_two_arenas(glibc: None) -> None:
    assert heaps("capped") == ("True", 2)
    _, without = heaps("default")
    assert without > 2, "without the cap glibc gives the threads arenas of their own"


def test_a_users_own_malloc_arena_max_is_left_alone(glibc: None) -> None:
    assert heaps("capped", MALLOC_ARENA_MAX="4")[0] == "False"
