"""A user's per-worker function for trials whose workers are spread over nodes.

Ray Train runs `fit` on each worker of a trial (`resources_per_trial.workers: 2`,
`placement: spread`). Each epoch rank 0 gathers every worker's Ray node id, appends them
to a log the test reads (one JSON line per epoch), reports how many nodes the trial
spans and checkpoints; a start from a checkpoint goes on from the epoch after it.

On a cluster the test copies this file into the user's project folder, which `tuner
submit` ships as the job's working directory: the nodes import it as `spread_workers`.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
import ray.train
import torch.distributed as dist


def fit(config: dict[str, Any]) -> None:
    """`config["epochs"]` epochs of `config["epoch_seconds"]`; the score is x * epoch."""
    rank = ray.train.get_context().get_world_rank()
    resumed_from = 0
    checkpoint = ray.train.get_checkpoint()  # the trial's last one when Tune restarts it
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resumed_from = json.loads(Path(folder, "state.json").read_text())["epoch"]
    for epoch in range(resumed_from + 1, config["epochs"] + 1):
        time.sleep(config["epoch_seconds"])
        nodes = worker_nodes()
        metrics = {
            "epoch": epoch,
            "score": config["x"] * epoch,
            "nodes": len(set(nodes)),
            "resumed_from_epoch": resumed_from,
        }
        with tempfile.TemporaryDirectory() as folder:
            saved = None
            if rank == 0:
                log_epoch(config, epoch, resumed_from, nodes)
                Path(folder, "state.json").write_text(json.dumps({"epoch": epoch}))
                saved = ray.train.Checkpoint.from_directory(folder)
            ray.train.report(metrics, checkpoint=saved)  # every worker reports (Train waits)
        # The test holds the workers here until it has killed a node under them.
        while epoch == config.get("hold_after") and not Path(config["release"]).exists():
            time.sleep(0.1)


def worker_nodes() -> list[str]:
    """Each worker's Ray node id, by rank: where Ray placed the trial's workers."""
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, ray.get_runtime_context().get_node_id())
    return [str(node) for node in gathered]


def log_epoch(config: dict[str, Any], epoch: int, resumed_from: int, nodes: list[str]) -> None:
    """One JSON line per epoch: the trial (by its searched x), where its workers ran."""
    line = {"x": config["x"], "epoch": epoch, "resumed_from": resumed_from, "nodes": nodes}
    with Path(config["log_dir"], "placements.jsonl").open("a") as log:
        log.write(json.dumps(line) + "\n")
