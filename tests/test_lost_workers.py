"""A trial handed a reused worker that has died restarts instead of failing.

On a cluster that worker died with its node (tuner/engine/lost_workers.py); here the
worker dies while Ray Tune hands it to the next trial, which is the same moment for
Ray Tune: a `reset` task on a dead worker, with the trial still PENDING.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from ray import tune

from tests.conftest import each_metrics
from tuner.engine.lost_workers import recover_trials_on_lost_workers

pytestmark = [pytest.mark.slow, pytest.mark.ray]


class DiesWhenReused(tune.Trainable):  # type: ignore[misc]
    """Reports once; its worker process dies when Ray Tune hands it to another trial."""

    def step(self) -> dict[str, Any]:
        return {"score": self.config["x"], "done": True}

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        Path(checkpoint_dir, "x").write_text(str(self.config["x"]))

    # Ray annotates the argument dict | None, but hands over the checkpoint's folder when
    # save_checkpoint returned None, as its docstring says.
    def load_checkpoint(self, checkpoint_dir: str) -> None:  # type: ignore[override]
        pass

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        os._exit(1)  # the node went, taking this idle worker with it


@pytest.fixture(scope="module")
def one_cpu_ray() -> Iterator[None]:
    ray.init(address="local", num_cpus=1, include_dashboard=False)
    yield
    ray.shutdown()


def test_the_seam_fits_this_ray() -> None:
    # A Ray whose controller changed would silently keep failing these trials.
    assert recover_trials_on_lost_workers()
    assert recover_trials_on_lost_workers()  # once per process, however often asked


def test_a_trial_given_a_dead_reused_worker_restarts(one_cpu_ray: None, tmp_path: Path) -> None:
    recover_trials_on_lost_workers()
    results = tune.Tuner(
        DiesWhenReused,
        param_space={"x": tune.grid_search([1, 2])},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(
            storage_path=str(tmp_path),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=1),
        ),
    ).fit()
    # The second trial was handed the first one's worker, which died: it restarted on
    # a new worker and finished, as a trial that loses its worker mid-run does.
    assert results.num_errors == 0
    assert sorted(metrics["score"] for metrics in each_metrics(results)) == [1, 2]


def test_a_lost_worker_is_found_behind_a_multi_worker_trials_error() -> None:
    """A 2-worker trial's driver raises Ray Train's WorkerGroupError; the dead worker's
    error is inside it, by rank, as a failed health check. The restart is "node lost"."""
    from ray.exceptions import ActorDiedError
    from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError
    from ray.train.v2.api.exceptions import WorkerGroupError

    from tuner.tracking.results import lost_worker

    died = ActorDiedError()
    lost = WorkerGroupError("worker 1 failed", {1: WorkerHealthCheckFailedError("dead", died)})
    assert lost_worker(lost) is died
    assert lost_worker(died) is died
    crashed = WorkerGroupError("worker 0 failed", {0: ValueError("the user's bug")})
    assert lost_worker(crashed) is None
    assert lost_worker(RuntimeError("plain")) is None


@pytest.mark.parametrize(("preempted", "counted"), [(True, 0), (False, 1)])
def test_a_multi_worker_trial_on_a_preempted_node_is_not_counted_a_failure(
    one_cpu_ray: None, tmp_path: Path, preempted: bool, counted: int
) -> None:
    """Ray Tune leaves a preempted worker's death out of max_failures only when the
    trial's error is that death: a multi-worker trial raises it, not Train's error."""
    from ray.exceptions import RayActorError, RayTaskError
    from ray.train._internal.storage import StorageContext
    from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError
    from ray.train.v2.api.exceptions import WorkerGroupError
    from ray.tune.experiment import Trial

    from tuner.engine.multi_worker import _as_tune_counts_it

    died = RayActorError(preempted=preempted)
    lost = WorkerGroupError("worker 1 failed", {1: WorkerHealthCheckFailedError("dead", died)})
    raised = _as_tune_counts_it(lost, set())
    assert raised is died and raised.__cause__ is lost

    def trial_in(folder: str) -> Trial:
        storage = StorageContext(str(tmp_path), "sweep", trial_dir_name=folder)
        trial = Trial("multi_worker_trial", stub=True, storage=storage)
        trial.init_local_path()  # where Tune writes the error down
        return trial

    trial = trial_in("lost")
    # What Ray hands Tune for an error the trial's function raised.
    trial.handle_error(RayTaskError("trial", "Traceback ...", raised))
    assert trial.run_metadata.num_failures == counted

    crashed = WorkerGroupError("worker 0 failed", {0: ValueError("the user's bug")})
    assert _as_tune_counts_it(crashed, {"a-node-that-lives"}) is crashed
    trial = trial_in("crashed")
    trial.handle_error(RayTaskError("trial", "Traceback ...", crashed))
    assert trial.run_metadata.num_failures == 1
