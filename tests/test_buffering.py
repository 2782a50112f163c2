"""Result buffering: on where no decision can come too late, and then it really engages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ray import tune

from tuner.engine.buffering import buffering_is_safe
from tuner.engine.experiments import Experiment
from tuner.engine.storage import resolve_storage
from tuner.engine.tune_env import BUFFERING, tune_environment, tune_settings
from tuner.engine.tuner_factory import build_tuner
from tuner.search.early_stops import EarlyStops
from tuner.spec import SweepSpec, parse_spec

ASHA = {"kind": "asha", "max_t": 8, "grace_period": 1, "reduction_factor": 2}


def sweep(trainable: str, scheduler: dict[str, Any] | None = None) -> SweepSpec:
    return parse_spec(
        {
            "name": "buffering",
            "trainable": trainable,
            "metric": "score",
            "mode": "max",
            "searcher": {"kind": "grid"},
            "scheduler": scheduler or {"kind": "fifo"},
            "params": {"x": {"type": "grid", "values": [1.0, 2.0]}},
            "config": {"epochs": 40},
        }
    )


def test_buffering_is_on_for_builtins_and_under_fifo_only() -> None:
    assert buffering_is_safe(sweep("tests.trainables:count_up"))
    assert buffering_is_safe(sweep("builtin:classifier", ASHA))
    # A user trainable need not checkpoint at ASHA's rungs: a buffer could run past a stop.
    user_asha = sweep("tests.trainables:count_up", ASHA)
    assert not buffering_is_safe(user_asha)
    assert not BUFFERING.keys() & tune_settings(user_asha).keys()


def test_the_environment_is_put_back_after_the_fit() -> None:
    import os

    with tune_environment(sweep("tests.trainables:count_up")):
        assert os.environ["TUNE_RESULT_BUFFER_LENGTH"] == BUFFERING["TUNE_RESULT_BUFFER_LENGTH"]
    assert "TUNE_RESULT_BUFFER_LENGTH" not in os.environ


class Arrivals(tune.Callback):  # type: ignore[misc]
    """The controller loop iteration in which each result reached the driver."""

    def __init__(self) -> None:
        self.iterations: list[int] = []
        self.epochs: dict[str, list[int]] = {}

    def on_trial_result(
        self, iteration: int, trials: Any, trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        self.iterations.append(iteration)
        self.epochs.setdefault(trial.trial_id, []).append(int(result["epoch"]))


@pytest.mark.ray
def test_buffered_results_reach_the_driver_together_and_every_one_arrives(
    ray_session: None, tmp_path: Path
) -> None:
    spec = sweep("tests.trainables:count_up")
    arrivals = Arrivals()
    experiment = Experiment(resolve_storage(str(tmp_path / "runs")), spec.name, "buffered")
    tuner = build_tuner(
        spec, experiment, [arrivals], EarlyStops.shared(experiment.uri), on_cluster=False
    )
    with tune_environment(spec):
        assert not tuner.fit().errors
    # Every epoch of both trials, once, in order: nothing is lost to the buffer.
    assert sorted(arrivals.epochs.values()) == [list(range(1, 41))] * 2
    # 80 results in far fewer hand-overs: without buffering each comes on its own.
    assert len(set(arrivals.iterations)) < len(arrivals.iterations) / 2
