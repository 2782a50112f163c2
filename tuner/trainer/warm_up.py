"""What a trial process's first epoch would wait for, started beside its set-up.

A fresh trial process pays, before its first optimizer step: `torch._dynamo`'s import
(torch's optimizers import it at their first parameter group: ~1.2 s on the 2-core
machine) and, on a GPU, CUDA's start and cuBLAS's load (seconds on a fresh process).
Both are started here, each in a thread, when the trial starts: CUDA's start is native
code and runs beside the trial fetching its checkpoint and data, building its model,
and the import. Once per process: a reused worker has them already.
"""

from __future__ import annotations

import logging
import threading

import torch

logger = logging.getLogger(__name__)

_started = threading.Event()


def warm_up() -> None:
    """Start the dynamo import and, where a GPU is visible, CUDA and cuBLAS."""
    if _started.is_set():
        return
    _started.set()
    threading.Thread(target=_import_dynamo, name="tuner-warm-dynamo", daemon=True).start()
    if torch.cuda.is_available():
        threading.Thread(target=_start_cuda, name="tuner-warm-cuda", daemon=True).start()


def _import_dynamo() -> None:
    try:
        import torch._dynamo  # noqa: F401
    except Exception:  # the optimizer imports it again, and says what is wrong
        logger.debug("warm-up: torch._dynamo did not import", exc_info=True)


def _start_cuda() -> None:
    try:
        torch.cuda.init()
        # A matrix product loads cuBLAS; its handle goes back to torch's pool for the
        # training thread when this thread ends.
        square = torch.ones(8, 8, device="cuda")
        torch.cuda.synchronize((square @ square).device)
    except Exception:  # training meets the same error and reports it
        logger.debug("warm-up: CUDA did not start", exc_info=True)
