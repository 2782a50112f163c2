"""Data-parallel training of the built-in trainers: which part of the work is a worker's.

A multi-worker trial (`resources_per_trial.workers` > 1) runs Ray Train's `TorchTrainer`,
whose workers Ray Train puts in a process group (gloo on CPUs, NCCL on GPUs). The same
epoch loop as a one-process trial runs in each (tuner.trainer.ddp_trial), with a
`Shard` saying which part of every batch and of the validation split is this worker's.
The batch semantics keep a 2-worker step the same step as one process takes on the
same global batch:

- every worker draws the same shuffled order from the epoch's seed, and each global
  batch (`batch_size` samples) is cut into `world` contiguous, disjoint parts;
- each worker's loss is weighted by its part's share of the batch times `world`, so
  DistributedDataParallel's gradient *average* is the mean gradient over the global
  batch, even when the parts differ in size (a short last batch);
- validation outputs are gathered from all workers and scored together: the metrics
  are the whole split's, equal on every worker (early stopping agrees everywhere).

The worker's body, its reports and checkpoints, is tuner.trainer.ddp_trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class Shard:
    """Where this process stands among a trial's workers; one process is `ALONE`."""

    rank: int = 0
    world: int = 1
    device: str | None = None  # the device Ray Train gave this worker; None: pick one

    @property
    def alone(self) -> bool:
        return self.world == 1

    def part(self, rows: Tensor) -> Tensor:
        """This worker's contiguous part of `rows` (sizes differ by one at most)."""
        return rows if self.alone else rows.tensor_split(self.world)[self.rank]

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to train: DDP averages its gradients over the workers."""
        if self.alone:
            return model
        device = next(model.parameters()).device
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def synced(self, model: nn.Module) -> nn.Module:
        """`model` with its batch norm layers computing their statistics over the whole
        global batch, all workers' parts together: one process's forward pass. Alone,
        `model` as it is (its batch norm already sees the whole batch)."""
        if self.alone:
            return model
        # Parameters and buffers move over as they are: the state dict keeps its keys,
        # so checkpoints load into a model with plain batch norm.
        synced: nn.Module = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return synced

    def total(self, value: Tensor) -> Tensor:
        """`value` summed over the workers."""
        if not self.alone:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def gather(self, outputs: Tensor) -> Tensor:
        """Every worker's `outputs` (of its `part` of a split), in rank order: the
        outputs on the whole split, as one process would have them."""
        if self.alone:
            return outputs
        parts: list[Any] = [None] * self.world
        dist.all_gather_object(parts, outputs.cpu())
        return torch.cat(parts)


ALONE = Shard()
