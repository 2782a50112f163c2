"""Two processes in one gloo process group, without Ray: the collectives of a
multi-worker trial's two workers as torch runs them."""

from __future__ import annotations

import gc
import os
import socket
from collections.abc import Callable
from typing import Any

# (rank, said): a worker's body; rank 0 puts what the test reads on `said`.
Body = Callable[[int, Any], None]


def _in_group(body: Body, rank: int, port: int, said: Any) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)  # two processes on two cores
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        body(rank, said)
    finally:
        # A DDP module keeps its process group alive past destroy_process_group; left to
        # the interpreter's finalization, gloo's threads can abort the process ("terminate
        # called without an active exception", exit -6, seen once in CI after every
        # collective had finished). Free such modules while the interpreter is whole.
        gc.collect()
        if dist.is_initialized():
            dist.destroy_process_group()
    # The body and the teardown are done: hand over what was said, then leave without the
    # interpreter's finalization, which can only add torch's exit-time races.
    said.close()
    said.join_thread()
    os._exit(0)


def gloo_pair(body: Body, timeout_s: float = 240) -> tuple[Any, list[int | None]]:
    """What rank 0 of two `body` processes said, and both processes' exit codes.
    `body` must be a module-level function: the processes are spawned."""
    import torch.multiprocessing as mp

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    context = mp.get_context("spawn")
    said = context.Queue()
    workers = [context.Process(target=_in_group, args=(body, rank, port, said)) for rank in (0, 1)]
    for worker in workers:
        worker.start()
    # Read before joining: a worker cannot end while what it said fills the pipe.
    # Bounded: a worker that failed says nothing.
    what = said.get(timeout=timeout_s)
    for worker in workers:
        worker.join(timeout=timeout_s)
    return what, [worker.exitcode for worker in workers]
