"""The head node's fast path for a trial's writes (tuner.cluster.mlflow_fast_writes)
against MLflow's own SqlAlchemyStore, on a real PostgreSQL: the same operations, in two
databases, leave the same runs, points and errors, as a user reads them back."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

from bench.servers import new_database, running_mlflow_server
from tuner.cluster import mlflow_fast_writes as fast

pytestmark = pytest.mark.server


class StockStore(SqlAlchemyStore):
    """MLflow's store as MLflow ships it: a subclass never takes the fast path, even in
    a process where it is installed."""


class FastStore(SqlAlchemyStore):
    """The same store, its three trial writes through the fast path."""

    def create_run(self, *args: Any) -> Any:
        if not fast.plain_create(args[3]):
            return super().create_run(*args)
        return fast.create_run(self, *args)

    def log_batch(self, run_id: str, metrics: Any, params: Any, tags: Any) -> None:
        assert fast.plain_batch(metrics, tags)
        fast.log_batch(self, run_id, metrics, params, tags)

    def update_run_info(self, run_id: str, status: Any, end_time: Any, run_name: Any) -> Any:
        assert not run_name  # a rename is MLflow's code
        return fast.update_run_info(self, run_id, status, end_time)


@pytest.fixture(scope="module")
def stores(postgres_uri: str) -> Iterator[tuple[SqlAlchemyStore, SqlAlchemyStore]]:
    with tempfile.TemporaryDirectory(prefix="fast-writes-") as artifacts:
        yield (
            StockStore(new_database(postgres_uri, "stock_writes"), f"{artifacts}/root"),
            FastStore(new_database(postgres_uri, "fast_writes"), f"{artifacts}/root"),
        )


Outcome = tuple[str, Any]


def outcome(store: SqlAlchemyStore, run_ids: list[str], step: Callable[..., Any]) -> Outcome:
    """What a step returned, or the error it raised (code and message), the run ids in
    it replaced by their places so that both stores' outcomes read the same."""
    try:
        said: Any = ("ok", step(store, run_ids))
    except MlflowException as error:
        # Its first line: a database's error goes on with its own connection's details.
        said = ("error", (error.error_code, error.message.splitlines()[0]))
    text = repr(said)
    for place, run_id in enumerate(run_ids):
        text = text.replace(run_id, f"<run {place}>")
    # A run that failed to be made is named in its error by an id of its own.
    return said[0], re.sub("[0-9a-f]{32}", "<another run>", text)


def created(store: SqlAlchemyStore, experiment_id: str, run_ids: list[str], **how: Any) -> Any:
    run = store.create_run(experiment_id, "someone", 1000, how.get("tags", []), how.get("name"))
    run_ids.append(run.info.run_id)
    return (run.info.run_name, run.info.status, run.info.lifecycle_stage,
            run.info.start_time, run.info.end_time, sorted(run.data.tags.items()),
            run.info.artifact_uri.endswith(f"{run.info.run_id}/artifacts"))  # fmt: skip


def read_back(store: SqlAlchemyStore, run_ids: list[str]) -> list[Any]:
    """Every run as get_run and the metric histories show it."""
    seen = []
    for run_id in run_ids:
        run = store.get_run(run_id)
        histories = {
            key: sorted(
                (m.step, m.timestamp, repr(m.value)) for m in store.get_metric_history(run_id, key)
            )
            for key in run.data.metrics
        }
        metrics = {k: repr(v) for k, v in run.data.metrics.items()}  # NaN equals itself so
        seen.append((run.info.run_name, run.info.status, run.info.end_time,
                     run.info.lifecycle_stage, metrics, run.data.params,
                     sorted(run.data.tags.items()), histories))  # fmt: skip
    return seen


def test_the_fast_path_writes_what_mlflow_writes(
    stores: tuple[SqlAlchemyStore, SqlAlchemyStore],
) -> None:
    nan, inf = float("nan"), float("inf")
    experiments = [store.create_experiment("sweep") for store in stores]
    gone = [store.create_experiment("deleted") for store in stores]
    for store, experiment_id in zip(stores, gone, strict=True):
        store.delete_experiment(experiment_id)
    steps: list[Callable[..., Any]] = []

    def step(make: Callable[[SqlAlchemyStore, list[str], str, str], Any]) -> None:
        steps.append(make)

    step(lambda s, ids, e, g: created(s, e, ids, tags=[RunTag("a", "1")], name="first"))
    step(lambda s, ids, e, g: created(s, e, ids, tags=[RunTag("mlflow.runName", "tagged")]))
    step(lambda s, ids, e, g: created(s, e, ids, tags=[RunTag("b", "1")], name="third"))
    step(lambda s, ids, e, g: created(s, e, ids, tags=[RunTag("b", "1"), RunTag("b", "2")]))
    step(lambda s, ids, e, g: created(s, e, ids, tags=[RunTag("mlflow.runName", "x")], name="y"))
    step(lambda s, ids, e, g: created(s, g, ids))
    step(lambda s, ids, e, g: created(s, "987654", ids))
    # Points out of order, twice, NaN and infinities; params again with the same value.
    points = [Metric("loss", 0.5, 10, 0), Metric("loss", 0.4, 12, 1), Metric("loss", 0.9, 11, 0),
              Metric("loss", 0.5, 10, 0), Metric("acc", nan, 10, 0), Metric("big", inf, 10, 0),
              Metric("big", -inf, 10, 1)]  # fmt: skip
    step(lambda s, ids, e, g: s.log_batch(ids[0], points, [Param("lr", "0.1")], [RunTag("c", "3")]))
    step(lambda s, ids, e, g: s.log_batch(ids[0], [Metric("loss", 0.1, 5, 0)], [], []))
    step(lambda s, ids, e, g: s.log_batch(ids[0], [Metric("loss", 0.3, 12, 1)], [], []))
    step(lambda s, ids, e, g: s.log_batch(ids[0], [Metric("acc", 0.7, 10, 0)], [], []))
    step(lambda s, ids, e, g: s.log_batch(ids[0], [], [Param("lr", "0.1")], [RunTag("c", "4")]))
    step(lambda s, ids, e, g: s.log_batch(ids[0], [], [Param("lr", "0.2"), Param("m", "1")], []))
    step(lambda s, ids, e, g: s.log_batch(ids[1], [], [], [RunTag("d", "1"), RunTag("d", "2")]))
    # The same (step, timestamp, value) again, NaN then 0: the latest stays the first.
    step(lambda s, ids, e, g: s.log_batch(ids[1], [Metric("z", nan, 10, 0)], [], []))
    step(lambda s, ids, e, g: s.log_batch(ids[1], [Metric("z", 0.0, 10, 0)], [], []))
    step(lambda s, ids, e, g: s.log_batch("0" * 32, [Metric("loss", 1.0, 1, 0)], [], []))
    step(lambda s, ids, e, g: s.log_batch(ids[1], [Metric("", 1.0, 1, 0)], [], []))
    step(lambda s, ids, e, g: s.update_run_info(ids[0], RunStatus.FINISHED, 2000, None))
    step(lambda s, ids, e, g: s.update_run_info(ids[1], RunStatus.FAILED, None, None))
    step(lambda s, ids, e, g: s.update_run_info(ids[2], None, None, None))
    step(lambda s, ids, e, g: s.delete_run(ids[2]))
    step(lambda s, ids, e, g: s.log_batch(ids[2], [Metric("loss", 1.0, 1, 0)], [], []))
    step(lambda s, ids, e, g: s.update_run_info(ids[2], RunStatus.FINISHED, 3000, None))
    step(lambda s, ids, e, g: s.update_run_info("0" * 32, RunStatus.FINISHED, 3000, None))

    run_ids: list[list[str]] = [[], []]
    for make in steps:
        said = [
            outcome(store, ids, lambda s, i, e=e, g=g: make(s, i, e, g))  # noqa: B023
            for store, ids, e, g in zip(stores, run_ids, experiments, gone, strict=True)
        ]
        assert said[0] == said[1], f"step {steps.index(make)}"
    assert len(run_ids[0]) == len(run_ids[1]) == 3
    stock_store, fast_store = stores
    assert read_back(stock_store, run_ids[0]) == read_back(fast_store, run_ids[1])
    # What a search sees: the latest values the runs are ranked by.
    found = [
        [run.info.run_name for run in store.search_runs([e], "metrics.loss < 0.45", 1)]
        for store, e in zip(stores, experiments, strict=True)
    ]
    assert found[0] == found[1] == ["first"]
    # Unnamed, a run gets one of MLflow's random names, as its tag too.
    unnamed = fast_store.create_run(experiments[1], "someone", 1000, [], None)
    assert unnamed.info.run_name
    assert fast_store.get_run(unnamed.info.run_id).data.tags == {
        "mlflow.runName": unnamed.info.run_name
    }


def test_anything_else_is_mlflows_own_code(
    stores: tuple[SqlAlchemyStore, SqlAlchemyStore], tmp_path: Path
) -> None:
    # Metrics of a logged model, and renames, are not the fast path's to write.
    assert not fast.plain_batch([Metric("loss", 1.0, 1, 0, model_id="m-1")], [])
    assert not fast.plain_batch([], [RunTag("mlflow.runName", "renamed")])
    assert fast.plain_batch([Metric("loss", 1.0, 1, 0)], [RunTag("note", "x")])
    # Another database, or a subclass (MLflow's workspace-aware stores are), keeps MLflow's.
    sqlite = SqlAlchemyStore(f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "artifacts"))
    assert not fast._fast(sqlite)
    assert not fast._fast(stores[0])
    assert fast._fast(SqlAlchemyStore(stores[1].db_uri, str(tmp_path / "artifacts")))


def test_the_heads_mlflow_server_writes_through_it(postgres_uri: str, tmp_path: Path) -> None:
    """`mlflow server` under gunicorn with the head node's options (bench.servers,
    checked against infra's unit by tests/test_infra.py) on PostgreSQL."""
    database = new_database(postgres_uri, "head_server_writes")
    with running_mlflow_server(
        tmp_path, str(tmp_path / "artifacts"), backend_store_uri=database, workers=2, gunicorn=True
    ) as uri:
        client = MlflowClient(uri)
        experiment_id = client.create_experiment("sweep")
        run = client.create_run(experiment_id, run_name="trial-1", tags={"role": "trial"})
        client.log_batch(run.info.run_id, [Metric("loss", 0.25, 1, 3)], [Param("lr", "0.1")])
        client.set_terminated(run.info.run_id)
        with pytest.raises(MlflowException, match="Changing param values is not allowed"):
            client.log_batch(run.info.run_id, params=[Param("lr", "0.2")])
        back = client.get_run(run.info.run_id)
    assert (back.info.run_name, back.info.status) == ("trial-1", "FINISHED")
    assert back.data.metrics == {"loss": 0.25}
    assert back.data.params == {"lr": "0.1"}
    assert back.data.tags["role"] == "trial"
    assert "take tuner's fast path" in (tmp_path / "server.log").read_text()
