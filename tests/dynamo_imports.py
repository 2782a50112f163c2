"""Records, in each Ray worker process, whether `torch._dynamo` was loaded when each
built-in classifier trial started and when it ended.

Installed by tests/test_dynamo_per_worker.py as Ray's `worker_process_setup_hook`: the
worker's `tuner.trainer.classifier.train_classifier` is replaced by a wrapper that
appends `PID started|ended yes|no` lines to the file TUNER_TEST_DYNAMO_IMPORTS names.
The trial's function reaches the worker by module and name, so the worker runs the
wrapper. The hook imports no torch: that stays the trial's to do, as in a sweep.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

IMPORTS_FILE = "TUNER_TEST_DYNAMO_IMPORTS"


def _record(event: str) -> None:
    loaded = "yes" if "torch._dynamo" in sys.modules else "no"
    with open(os.environ[IMPORTS_FILE], "a") as imports:
        imports.write(f"{os.getpid()} {event} {loaded}\n")


def record_trials() -> None:
    from tuner.trainer import classifier

    train = classifier.train_classifier

    @functools.wraps(train)
    def recorded(config: dict[str, Any]) -> None:
        _record("started")
        train(config)
        _record("ended")

    classifier.train_classifier = recorded  # type: ignore[assignment]
