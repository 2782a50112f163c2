"""Ray Tune's result buffering, switched on where no decision can come too late.

Each `tune.report` of a function trainable blocks its training thread until the driver
has taken the result and asked for the next one: a round trip per epoch (about 14 ms
of a 37 ms epoch on 2 cores). Buffering lets the trial's actor run `train()` again
locally and hand over every result of a short window together.

Two seams are closed here:
- Ray's controller calls `train_buffered(buffer_length, buffer_time_s)` but the method
  takes `(buffer_time_s, max_buffer_length)`, so buffering never engages (Ray 2.5x-2.6x).
  The trainable class here takes the arguments in the order they come.
- A buffer runs ahead of the scheduler: results after an ASHA stop would be dropped.
  Ray's buffer ends at every result that carries a checkpoint, and a built-in trainer
  always checkpoints at ASHA's rungs (tuner.engine.checkpoints), so for built-ins, and
  for any trainable under FIFO (which stops nobody), no result can come after a stop.
  Other trainables under ASHA report unbuffered, as before.
"""

from __future__ import annotations

from typing import Any

from ray.tune.trainable import Trainable, wrap_function

from tuner.spec import FifoScheduler, SweepSpec
from tuner.trainer.registry import BUILTINS

BUFFER_LENGTH = 100  # results per hand-over at most
BUFFER_WINDOW_S = 0.25  # how long a trial's results may wait to reach the driver


def buffering_is_safe(spec: SweepSpec) -> bool:
    return spec.trainable in BUILTINS or isinstance(spec.scheduler, FifoScheduler)


def with_result_buffering(function: Any) -> type[Trainable]:
    """The function trainable as a Ray Trainable class whose `train_buffered` takes its
    arguments in the order Ray's controller passes them."""
    base = wrap_function(function)

    class BufferedTrainable(base):  # type: ignore[misc, valid-type]
        def train_buffered(self, max_buffer_length: int, buffer_time_s: float) -> list[Any]:
            results: list[Any] = super().train_buffered(buffer_time_s, max_buffer_length)
            return results

    # Ray names trials and their folders after the trainable: keep the function's name.
    BufferedTrainable.__name__ = base.__name__
    BufferedTrainable.__qualname__ = base.__qualname__
    return BufferedTrainable
