"""The tracking writer against real tracking servers: `mlflow server` on SQLite and on
PostgreSQL (what the infra's head node runs). The writes of many trials go out side by
side, each run's own writes stay in order, a full queue holds the driver back, and a
trial costs three requests."""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, RunStatus

from bench.servers import running_mlflow_server
from tests.conftest import run_cli
from tuner.tracking.writer import (
    SERVER_REQUESTS_IN_FLIGHT,
    CreateRun,
    EndRun,
    LogMetrics,
    TrackingOffline,
    TrackingWriter,
    requests_in_flight,
)

pytestmark = pytest.mark.server

FINISHED = RunStatus.to_string(RunStatus.FINISHED)
KILLED = RunStatus.to_string(RunStatus.KILLED)
_names = (f"writer-{n}" for n in itertools.count())


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest) -> str:
    fixture = "mlflow_server" if request.param == "sqlite" else "mlflow_server_on_postgres"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def writer(server: str) -> Iterator[tuple[TrackingWriter, MlflowClient]]:
    client = MlflowClient(server)
    experiment_id = client.create_experiment(next(_names))
    tracking = TrackingWriter(client, experiment_id, requests_in_flight(server))
    yield tracking, client
    tracking.close()


def points(key: str, steps: range) -> tuple[Metric, ...]:
    return tuple(Metric(key, step / 100, 1_000 + step, step) for step in steps)


def test_a_server_gets_requests_in_parallel_and_a_sqlite_file_one_at_a_time() -> None:
    assert requests_in_flight("http://127.0.0.1:5000") == SERVER_REQUESTS_IN_FLIGHT > 1
    assert requests_in_flight("https://mlflow.example.org") == SERVER_REQUESTS_IN_FLIGHT
    assert requests_in_flight("sqlite:////tmp/mlflow.db") == 1


def test_many_trials_at_once_each_run_gets_every_point_once_in_order(
    writer: tuple[TrackingWriter, MlflowClient],
) -> None:
    """Trials start, report and end interleaved, across several windows: every run ends
    with its params, its points in step order, each once, and the status it ended with."""
    tracking, client = writer
    trials = [f"t{n}" for n in range(2 * SERVER_REQUESTS_IN_FLIGHT)]
    for trial in trials:
        tracking.submit(CreateRun(trial, trial, {"seed": trial}, {"tuner.trial_id": trial}))
    for step, trial in itertools.product(range(1, 6), trials):
        tracking.submit(LogMetrics(trial, points("loss", range(step, step + 1))))
        if step == 3:
            tracking.flush()  # a window boundary in the middle of every trial
    for n, trial in enumerate(trials):
        tracking.submit(EndRun(trial, KILLED if n % 2 else FINISHED, {"tuner.end": str(n)}))
    tracking.flush()

    for n, trial in enumerate(trials):
        run_id = tracking.run_id(trial)
        assert run_id is not None
        run = client.get_run(run_id)
        assert run.data.params == {"seed": trial}
        assert run.data.tags["tuner.end"] == str(n)
        assert run.info.status == (KILLED if n % 2 else FINISHED)
        history = client.get_metric_history(run_id, "loss")
        assert [(p.step, p.value) for p in history] == [(s, s / 100) for s in range(1, 6)]


def test_with_requests_in_flight_a_full_queue_still_holds_the_driver_back(
    server: str,
) -> None:
    """The runs' turns take what the queue holds, but no more than its bound again: past
    that the driver waits (counted), and every point lands once, in order."""
    client = MlflowClient(server)
    tracking = TrackingWriter(
        client, client.create_experiment(next(_names)), requests_in_flight(server), max_queued=4
    )
    trials = [f"burst{n}" for n in range(3)]
    for trial in trials:
        tracking.submit(CreateRun(trial, trial, {}, {}))
    for step, trial in itertools.product(range(1, 41), trials):
        tracking.submit(LogMetrics(trial, points("loss", range(step, step + 1))))
    tracking.flush()
    tracking.close()

    assert tracking.stats.backpressure_s > 0
    for trial in trials:
        run_id = tracking.run_id(trial)
        assert run_id is not None
        assert [p.step for p in client.get_metric_history(run_id, "loss")] == list(range(1, 41))


def test_a_short_trial_costs_three_requests_and_prints_nothing(
    mlflow_server: str, mlflow_server_log: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """runs/create (with its tags), one log-batch (params, points, end tags) and the
    status update: MLflow's own set_terminated would fetch the run first to print a link."""
    client = MlflowClient(mlflow_server)
    experiment_id = client.create_experiment(next(_names))
    tracking = TrackingWriter(client, experiment_id, requests_in_flight(mlflow_server))
    before = _requests(mlflow_server_log)
    trials = [f"t{n}" for n in range(4)]
    for trial in trials:
        tracking.submit(CreateRun(trial, trial, {"lr": "0.1"}, {"tuner.trial_id": trial}))
        tracking.submit(LogMetrics(trial, points("score", range(1, 2))))
        tracking.submit(EndRun(trial, FINISHED, {"tuner.checkpoint": "/c"}))
    tracking.flush()
    tracking.close()
    made = _requests(mlflow_server_log) - before
    assert made == Counter(
        {"runs/create": len(trials), "runs/log-batch": len(trials), "runs/update": len(trials)}
    )
    assert "View run" not in capfd.readouterr().out


def _requests(log: Path) -> Counter[str]:
    """The tracking API calls in the server's access log, by endpoint."""
    calls = re.findall(r'"(?:GET|POST|PATCH|DELETE) /api/2\.0/mlflow/([\w/-]+)', log.read_text())
    return Counter(calls)


def test_a_server_gone_for_good_costs_seconds_and_tuner_sync_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server dies mid-sweep: the end of the sweep waits seconds, not MLflow's
    minutes of retries per request; every write it missed is kept in a journal, and
    `tuner sync` makes them once a server answers on the same store, each once."""
    # MLflow's retries short for the test; the writer's own default bound is 31 s.
    for name, value in {"MAX_RETRIES": "1", "BACKOFF_FACTOR": "0", "TIMEOUT": "5"}.items():
        monkeypatch.setenv(f"MLFLOW_HTTP_REQUEST_{name}", value)
    root = tmp_path / "server"
    root.mkdir()
    artifacts = str(root / "artifacts")
    unsynced = tmp_path / "unsynced"
    before = [f"t{n}" for n in range(4)]
    with running_mlflow_server(root, artifacts) as uri:
        client = MlflowClient(uri)
        experiment_id = client.create_experiment("gone")
        writer = TrackingWriter(
            client, experiment_id, requests_in_flight(uri), journal_dir=unsynced
        )
        for trial in before:
            writer.submit(CreateRun(trial, trial, {"lr": "0.1"}, {"tuner.trial_id": trial}))
            writer.submit(LogMetrics(trial, points("loss", range(1, 4))))
        writer.flush()
    # The server is gone: the trials go on reporting and ending, and one more starts.
    for trial in before:
        writer.submit(LogMetrics(trial, points("loss", range(4, 7))))
        writer.submit(EndRun(trial, FINISHED, {"tuner.end": "done"}))
    writer.submit(CreateRun("late", "late", {"lr": "0.2"}, {"tuner.trial_id": "late"}))
    writer.submit(LogMetrics("late", points("loss", range(1, 3))))
    writer.submit(EndRun("late", KILLED, {}))
    started = time.monotonic()
    with pytest.raises(TrackingOffline, match="stopped answering") as caught:
        writer.flush()
    assert time.monotonic() - started < 30
    writer.close()
    (journal,) = unsynced.iterdir()
    assert str(journal) in str(caught.value)
    assert journal.stat().st_mode & 0o077 == 0, "params and tags: its owner's only"

    # A sync while it is still gone keeps every write, in one journal, not two.
    gone = run_cli("sync", str(journal), cwd=tmp_path)
    assert gone.returncode == 1
    (journal,) = unsynced.iterdir()
    assert f"`tuner sync {journal}`" in gone.stderr, gone.stderr

    with running_mlflow_server(root, artifacts) as uri:  # back, on the same store
        done = run_cli("sync", str(journal), "--tracking-uri", uri, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert not journal.exists()
        client = MlflowClient(uri)
        runs = client.search_runs([experiment_id])
        by_trial = {run.data.tags["tuner.trial_id"]: run for run in runs}
        assert sorted(by_trial) == sorted([*before, "late"]), "one run per trial, no second"
        for trial, run in by_trial.items():
            steps = [p.step for p in client.get_metric_history(run.info.run_id, "loss")]
            assert steps == (list(range(1, 7)) if trial != "late" else [1, 2]), trial
            assert run.info.status == (KILLED if trial == "late" else FINISHED)
        assert by_trial["late"].data.params == {"lr": "0.2"}
        assert by_trial["t0"].data.tags["tuner.end"] == "done"
