"""A user's per-worker training function: what runs on each worker of a trial with
`resources_per_trial.workers` > 1 (the example of docs/own-trainable.md#several-workers).

Ray Train runs `fit` on every worker with the trial's config. It uses Ray Train's calls,
not Ray Tune's: `ray.train.report` on every worker each epoch (rank 0's metrics and
checkpoint are the trial's), `ray.train.get_checkpoint()` to resume, the worker's rank
and world size from `ray.train.get_context()`, and `ray.train.torch.prepare_model` /
`prepare_data_loader` for DistributedDataParallel and each worker's shard of the data.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset


def fit(config: dict[str, Any]) -> None:
    """Fits a line to 512 noisy points, `config["epochs"]` epochs of SGD."""
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(0)  # the same data and first weights on every worker
    features = torch.randn(512, 8)
    targets = features @ torch.arange(1.0, 9.0) + 0.1 * torch.randn(512)
    model = ray.train.torch.prepare_model(nn.Linear(8, 1))  # DDP on this worker's device
    assert isinstance(model, DistributedDataParallel)  # as it is with more than one worker
    optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"])
    start = 1
    checkpoint = ray.train.get_checkpoint()  # the trial's last checkpoint, on a resume
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = torch.load(os.path.join(folder, "state.pt"))
        model.module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["epoch"] + 1
    # batch_size is the global batch: each worker takes its part of it. The sampler
    # prepare_data_loader adds gives each worker a disjoint shard of every epoch.
    loader = ray.train.torch.prepare_data_loader(
        DataLoader(
            TensorDataset(features, targets), batch_size=config["batch_size"] // world, shuffle=True
        )
    )
    assert isinstance(loader.sampler, DistributedSampler)  # as it is with more than one worker
    for epoch in range(start, config["epochs"] + 1):
        loader.sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every worker
        total = torch.zeros(2)
        for x, y in loader:
            loss = nn.functional.mse_loss(model(x).squeeze(-1), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += torch.tensor([loss.item() * len(y), len(y)])
        dist.all_reduce(total)  # the epoch's loss over every worker's shard
        metrics = {"epoch": epoch, "loss": float(total[0] / total[1]), "world_size": world}
        # Every worker reports each epoch (Ray Train waits for all); rank 0 saves.
        with tempfile.TemporaryDirectory() as folder:
            saved = None
            if rank == 0:
                state = {
                    "model": model.module.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch,
                }
                torch.save(state, os.path.join(folder, "state.pt"))
                saved = ray.train.Checkpoint.from_directory(folder)
            ray.train.report(metrics, checkpoint=saved)
