"""The tracking writer against a real SQLite MLflow store: what it writes is what a user
reads back, in order, across MLflow's batch limits, and a failed write is reported; and
a sweep's trials read back from it, page after page."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, RunStatus, RunTag

from tuner.tracking.runs import child_runs
from tuner.tracking.tags import TAG_PARENT, TAG_ROLE, TAG_TRIAL_ID
from tuner.tracking.writer import (
    BATCH_WINDOW_S,
    MAX_METRICS_PER_BATCH,
    CreateRun,
    EndRun,
    LogMetrics,
    ReopenRun,
    SetTags,
    TrackingError,
    TrackingWriter,
)

FINISHED = RunStatus.to_string(RunStatus.FINISHED)
RUNNING = RunStatus.to_string(RunStatus.RUNNING)
_trial_ids = (f"trial_{n}" for n in itertools.count())


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> MlflowClient:
    """One SQLite store for the module: creating one runs MLflow's migrations (seconds)."""
    database = tmp_path_factory.mktemp("store") / "mlflow.db"
    return MlflowClient(f"sqlite:///{database}")


@pytest.fixture
def writer(client: MlflowClient, request: pytest.FixtureRequest) -> Iterator[TrackingWriter]:
    experiment_id = client.create_experiment(request.node.name)
    tracking = TrackingWriter(client, experiment_id)
    yield tracking
    tracking.close()


def points(key: str, steps: range) -> tuple[Metric, ...]:
    return tuple(Metric(key, float(step) / 10, 1_000 + step, step) for step in steps)


def test_a_trial_becomes_a_run_with_its_params_points_and_end(
    writer: TrackingWriter, client: MlflowClient
) -> None:
    trial = next(_trial_ids)
    writer.submit(CreateRun(trial, "trial one", {"lr": "0.01", "hidden": "64"}, {"role": "t"}))
    writer.submit(LogMetrics(trial, points("val_accuracy", range(1, 4))))
    writer.submit(LogMetrics(trial, points("val_accuracy", range(4, 6))))
    writer.submit(EndRun(trial, FINISHED, {"tuner.checkpoint": "/ckpt"}))
    writer.flush()

    run_id = writer.run_id(trial)
    assert run_id is not None
    run = client.get_run(run_id)
    assert run.info.run_name == "trial one"
    assert run.info.status == FINISHED
    assert run.data.params == {"lr": "0.01", "hidden": "64"}
    assert run.data.tags["role"] == "t"
    assert run.data.tags["tuner.checkpoint"] == "/ckpt"
    history = client.get_metric_history(run_id, "val_accuracy")
    assert [(p.step, p.value) for p in history] == [(s, s / 10) for s in range(1, 6)]


def test_more_points_than_one_request_holds_all_arrive(
    writer: TrackingWriter, client: MlflowClient
) -> None:
    """MLflow takes at most 1,000 entries and 100 params per log_batch: the writer splits."""
    trial = next(_trial_ids)
    params = {f"p{n}": str(n) for n in range(150)}
    steps = range(1, MAX_METRICS_PER_BATCH + 501)
    writer.submit(CreateRun(trial, "big", params, {}))
    writer.submit(LogMetrics(trial, points("loss", steps)))
    writer.flush()

    run_id = writer.run_id(trial)
    assert run_id is not None
    assert client.get_run(run_id).data.params == params
    assert len(client.get_metric_history(run_id, "loss")) == len(steps)


def test_a_resumed_trial_runs_again_without_the_tags_of_how_it_ended(
    writer: TrackingWriter, client: MlflowClient
) -> None:
    trial = next(_trial_ids)
    writer.submit(CreateRun(trial, "resumed", {}, {}))
    writer.submit(EndRun(trial, RunStatus.to_string(RunStatus.KILLED), {"tuner.killed": "ctrl-c"}))
    writer.submit(ReopenRun(trial, ("tuner.killed",)))
    writer.submit(SetTags(trial, {"tuner.restarts": "1"}))
    writer.flush()

    run_id = writer.run_id(trial)
    assert run_id is not None
    run = client.get_run(run_id)
    assert run.info.status == RUNNING
    assert "tuner.killed" not in run.data.tags
    assert run.data.tags["tuner.restarts"] == "1"


def test_a_failed_write_is_reported_at_flush_and_the_others_still_land(
    writer: TrackingWriter, client: MlflowClient
) -> None:
    trial = next(_trial_ids)
    writer.submit(CreateRun(trial, "partly bad", {}, {}))
    writer.flush()
    # MLflow refuses a metric name with "!" in it: that request fails, later ones do not.
    writer.submit(LogMetrics(trial, points("bad name!", range(1, 2))))
    with pytest.raises(TrackingError, match=r"1 MLflow write\(s\) failed"):
        writer.flush()
    writer.submit(LogMetrics(trial, points("loss", range(1, 3))))
    writer.flush()  # the failure was reported once; the writer goes on

    run_id = writer.run_id(trial)
    assert run_id is not None
    assert len(client.get_metric_history(run_id, "loss")) == 2


def test_runs_of_many_trials_in_one_window_each_get_their_own_points(
    writer: TrackingWriter, client: MlflowClient
) -> None:
    trials = [next(_trial_ids) for _ in range(5)]
    for trial in trials:
        writer.submit(CreateRun(trial, trial, {"seed": trial}, {}))
    for step, trial in itertools.product(range(1, 4), trials):
        writer.submit(LogMetrics(trial, points(f"m_{trial}", range(step, step + 1))))
    writer.flush()

    for trial in trials:
        run_id = writer.run_id(trial)
        assert run_id is not None
        run = client.get_run(run_id)
        assert run.data.params == {"seed": trial}
        assert sorted(run.data.metrics) == [f"m_{trial}"]
        assert [p.step for p in client.get_metric_history(run_id, f"m_{trial}")] == [1, 2, 3]


def test_a_full_queue_holds_the_driver_back_and_loses_nothing(
    client: MlflowClient, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    """A store slower than the trials: submit waits for room (said once, counted), and
    every point still lands once, in order."""
    tracking = TrackingWriter(client, client.create_experiment(request.node.name), max_queued=5)
    trial = next(_trial_ids)
    tracking.submit(CreateRun(trial, "burst", {}, {}))
    steps = range(1, 61)
    for step in steps:
        tracking.submit(LogMetrics(trial, points("loss", range(step, step + 1))))
    tracking.submit(EndRun(trial, FINISHED, {}))
    tracking.flush()
    tracking.close()

    run_id = tracking.run_id(trial)
    assert run_id is not None
    assert [p.step for p in client.get_metric_history(run_id, "loss")] == list(steps)
    assert client.get_run(run_id).info.status == FINISHED
    stats = tracking.stats
    assert stats.backpressure_s > 0
    assert stats.points == len(steps)
    assert stats.operations == len(steps) + 2
    # The first write waited at least one batching window; none waited forever.
    assert BATCH_WINDOW_S <= stats.max_lag_s < 60
    assert 0 < stats.lag_quantile(0.5) <= stats.max_lag_s
    warnings = [r for r in caplog.records if "operations behind" in r.getMessage()]
    assert len(warnings) == 1


def test_child_runs_pages_through_every_trial_of_a_sweep(
    client: MlflowClient, request: pytest.FixtureRequest
) -> None:
    """A sweep's trials fill several pages of search_runs: every one comes back, once."""
    experiment_id = client.create_experiment(request.node.name)
    parent = client.create_run(experiment_id, tags={TAG_ROLE: "sweep"}).info.run_id
    other = client.create_run(experiment_id, tags={TAG_ROLE: "sweep"}).info.run_id
    trials = {f"trial_{n:02d}" for n in range(23)}
    for trial in sorted(trials):
        run = client.create_run(experiment_id, tags={TAG_PARENT: parent, TAG_TRIAL_ID: trial})
        client.log_batch(run.info.run_id, metrics=[Metric("score", 1.0, 0, 1)])
    # Another sweep's trial in the same experiment is not one of these.
    client.create_run(experiment_id, tags={TAG_PARENT: other, TAG_TRIAL_ID: "elsewhere"})
    client.log_batch(parent, tags=[RunTag("tuner.metric", "score")])

    found = child_runs(client, experiment_id, parent, page_size=10)

    assert sorted(run.data.tags[TAG_TRIAL_ID] for run in found) == sorted(trials)
    assert len({run.info.run_id for run in found}) == len(trials)
