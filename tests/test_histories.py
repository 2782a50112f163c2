"""Many runs' metric histories read in a few requests (tuner/tracking/histories.py) equal
what MLflow's client reads a run at a time: on a local SQLite store, and through
`mlflow server` on SQLite and on PostgreSQL, including where the server's bulk answer
may be cut short and the runs are read one at a time."""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from tuner.tracking import histories
from tuner.tracking.histories import metric_histories

RUNS = 150  # more than one of the server's bulk requests, less than one database query
_names = (f"histories-{n}" for n in itertools.count())


def logged_sweep(client: MlflowClient) -> list[str]:
    """RUNS runs: run i logs `loss` at steps 1..(i % 4), the last step twice (the later
    value counts), `other` alongside; every fourth run logs no `loss` at all."""
    experiment = client.create_experiment(next(_names))
    now = int(time.time() * 1000)
    run_ids = []
    for i in range(RUNS):
        run_id = client.create_run(experiment).info.run_id
        points = [Metric("loss", i + step / 10, now + step, step) for step in range(1, i % 4 + 1)]
        if points:
            last = points[-1]
            points.append(Metric("loss", -1.0 * i, last.timestamp + 1, last.step))
        points.append(Metric("other", 7.0, now, 1))
        client.log_batch(run_id, metrics=points)
        run_ids.append(run_id)
    return run_ids


def one_at_a_time(client: MlflowClient, run_ids: list[str]) -> dict[str, dict[int, float]]:
    return {
        run_id: {p.step: p.value for p in client.get_metric_history(run_id, "loss")}
        for run_id in run_ids
    }


def check(client: MlflowClient, caplog: pytest.LogCaptureFixture) -> None:
    run_ids = logged_sweep(client)
    with caplog.at_level(logging.DEBUG, logger=histories.__name__):
        read = metric_histories(client, run_ids, "loss")
    assert "no bulk metric history" not in caplog.text  # the bulk read answered
    assert read == one_at_a_time(client, run_ids)
    assert read[run_ids[3]] == {1: 3.1, 2: 3.2, 3: -3.0}  # the step logged twice: the later
    assert read[run_ids[4]] == {}  # no loss logged
    assert sum(len(history) for history in read.values()) == sum(i % 4 for i in range(RUNS))


def test_a_local_sqlite_store(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    check(MlflowClient(f"sqlite:///{tmp_path}/mlflow.db"), caplog)


@pytest.mark.server
@pytest.mark.parametrize("backend", ["mlflow_server", "mlflow_server_on_postgres"])
def test_a_tracking_server(
    backend: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    check(MlflowClient(str(request.getfixturevalue(backend))), caplog)


@pytest.mark.server
def test_an_answer_that_may_be_cut_short_is_read_run_by_run(
    mlflow_server: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The server answers at most this many points: a full answer may be missing some.
    monkeypatch.setattr(histories, "SERVER_POINTS", 40)
    check(MlflowClient(mlflow_server), caplog)
