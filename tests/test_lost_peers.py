"""A 2-worker trial whose worker's node dies, told by the surviving worker first.

The survivor's collective fails at once ("Connection closed by peer"); the cluster
declares the node dead seconds later. The trial waits for that word and fails with the
node's death, so its restart reads "node lost" (tuner/engine/lost_peers.py). Here a
real gloo pair gives the survivor's error and a real two-node Ray cluster loses a node.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import ray
from ray._private.node import Node
from ray.cluster_utils import Cluster

from tests.gloo_pair import gloo_pair
from tuner.engine.lost_peers import lost_peer_symptom, wait_for_node_death

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def _survivor(rank: int, said: Any) -> None:
    """Rank 1 dies after the first collective; rank 0 says what its next one raised."""
    import torch.distributed as dist

    gathered: list[Any] = [None, None]
    dist.all_gather_object(gathered, rank)
    if rank == 1:
        os._exit(1)  # its node went
    time.sleep(0.5)
    try:
        dist.all_gather_object(gathered, rank)
    except Exception as error:  # what the survivor's own code sees
        said.put(error)


@pytest.fixture(scope="module")
def survivors_error() -> Exception:
    """What this torch's gloo raises on rank 0 when rank 1's process is gone."""
    error, _ = gloo_pair(_survivor, timeout_s=60)
    assert isinstance(error, Exception)
    return error


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[Cluster]:
    # Health checks 0.3 s apart, 3 missed: a crashed node is declared dead in about a
    # second instead of Ray's 17 s.
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "_system_config": {
                "health_check_initial_delay_ms": 0,
                "health_check_period_ms": 300,
                "health_check_timeout_ms": 300,
                "health_check_failure_threshold": 3,
            },
        },
    )
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_a_survivors_cut_collective_reads_as_a_lost_peer(survivors_error: Exception) -> None:
    from ray.train.v2.api.exceptions import WorkerGroupError

    told = WorkerGroupError("worker 0 failed", {0: survivors_error})
    assert lost_peer_symptom(told)
    assert lost_peer_symptom(survivors_error)
    users_bug = WorkerGroupError("worker 0 failed", {0: ValueError("bad shape")})
    assert not lost_peer_symptom(users_bug)
    assert not lost_peer_symptom(RuntimeError("CUDA out of memory"))


def test_the_trial_fails_with_its_workers_node_death_and_restarts_as_node_lost(
    two_nodes: Cluster, survivors_error: Exception, tmp_path: Any
) -> None:
    from ray.exceptions import RayActorError, RayTaskError
    from ray.train._internal.storage import StorageContext
    from ray.train.v2.api.exceptions import WorkerGroupError
    from ray.tune.experiment import Trial

    from tuner.engine.multi_worker import _as_tune_counts_it
    from tuner.tracking.results import restart_reason

    (worker_node,) = two_nodes.worker_nodes
    told = WorkerGroupError("worker 0 failed", {0: survivors_error})
    two_nodes.remove_node(worker_node, allow_graceful=False)
    raised = _as_tune_counts_it(told, {worker_node.node_id})

    assert isinstance(raised, RayActorError) and not raised.preempted
    assert worker_node.node_id in str(raised)
    assert raised.__cause__ is told  # Train's own account stays in the traceback
    storage = StorageContext(str(tmp_path), "sweep", trial_dir_name="lost")
    trial = Trial("multi_worker_trial", stub=True, storage=storage)
    trial.init_local_path()
    trial.handle_error(RayTaskError("trial", "Traceback ...", raised))
    assert restart_reason(trial) == "node lost"


def test_a_lost_peer_whose_nodes_all_live_stays_the_trials_own_error(two_nodes: Cluster) -> None:
    # Cluster.__init__ sets head_node to None, unannotated, so mypy reads it as always None.
    head_node = cast("Node | None", two_nodes.head_node)
    assert head_node is not None
    head = head_node.node_id
    started = time.monotonic()
    assert wait_for_node_death({head}, ray.nodes, timeout_s=1.0) is None
    assert time.monotonic() - started < 5  # bounded: it fails as the trial's own error
