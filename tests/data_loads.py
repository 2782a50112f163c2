"""Counts, in each Ray worker process, every time a built-in trainer loads its data set.

Installed by tests/test_shared_data.py as Ray's `worker_process_setup_hook`: each call
of tuner.trainer.data.load_arrays in a worker appends a line to the file that
TUNER_TEST_DATA_LOADS names, then loads as before.
"""

from __future__ import annotations

import functools
import os
from typing import Any

LOADS_FILE = "TUNER_TEST_DATA_LOADS"


def count_loads() -> None:
    from tuner.trainer import data

    load_arrays = data.load_arrays

    @functools.wraps(load_arrays)
    def counted(*args: Any, **kwargs: Any) -> Any:
        with open(os.environ[LOADS_FILE], "a") as loads:
            loads.write(f"{os.getpid()}\n")
        return load_arrays(*args, **kwargs)

    data.load_arrays = counted  # type: ignore[assignment]
