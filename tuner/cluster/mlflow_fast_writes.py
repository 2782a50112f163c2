"""A trial's three writes in the head node's `mlflow server`, at under half the cost.

Each trial makes three requests of the tracking server: `runs/create`, `runs/log-batch`
and `runs/update`. MLflow's SqlAlchemyStore serves them through its ORM in 22 SQL
statements and about 12 ms of Python on PostgreSQL: `create_run` reads the new run back
with its dataset inputs (a new run has none), `log_batch` loads the run once for its
params, once for its metrics and once for its tags, and `update_run_info` reloads the
run's tags, params and metrics to answer with its info (bench/README.md, "Where the
server path's time goes"). On a cluster that CPU is the head node's, and it bounds how
many trials one head starts and ends a second.

Here the same three writes run as SQLAlchemy Core statements in one transaction each,
with MLflow's own validation and its own checks of the experiment's and the run's
state (so the errors say what MLflow's say): 11 statements, about 5 ms. Anything
outside the common shape is MLflow's own code, unchanged: another database than
PostgreSQL (the upserts are its dialect's), a workspace-aware store (a subclass),
metrics of logged models or datasets, renames (`mlflow.runName`, `run_name`) and a
new run given one tag key twice.

The head node installs this in its `mlflow server` through gunicorn's configuration
(tuner.cluster.mlflow_gunicorn); nothing else in tuner does. tests/test_mlflow_fast_writes.py
holds both paths to the same results on a real PostgreSQL, errors included.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from mlflow.entities import (
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunStatus,
    RunTag,
    SourceType,
    ViewType,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.store.tracking import sqlalchemy_store as stock
from mlflow.store.tracking.dbmodels.models import (
    SqlLatestMetric,
    SqlMetric,
    SqlParam,
    SqlRun,
    SqlTag,
)
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME, _get_run_name_from_tags
from mlflow.utils.name_utils import _generate_random_name
from mlflow.utils.uri import append_to_uri_path
from mlflow.utils.validation import (
    _validate_batch_log_data,
    _validate_batch_log_limits,
    _validate_metric,
    _validate_param_keys_unique,
    _validate_run_id,
    _validate_tag,
)
from sqlalchemy import and_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert

logger = logging.getLogger(__name__)

INSTALLED = "_tuner_fast_writes"  # set on MLflow's class once installed

Store = stock.SqlAlchemyStore
RUNS, TAGS, PARAMS = SqlRun.__table__, SqlTag.__table__, SqlParam.__table__
METRICS, LATEST = SqlMetric.__table__, SqlLatestMetric.__table__


def _fast(store: Any) -> bool:
    """Whether `store` takes the fast path: MLflow's own store class on PostgreSQL."""
    return type(store) is Store and store.engine.dialect.name == "postgresql"


def create_run(
    store: Any,
    experiment_id: str,
    user_id: str,
    start_time: int,
    tags: Sequence[RunTag] | None,
    run_name: str | None,
) -> Run:
    """MLflow's create_run: the run and its tags inserted, answered from what was written."""
    with store.ManagedSessionMaker(read_only=False) as session:
        experiment = store._get_experiment(session, experiment_id, ViewType.ALL)
        store._check_experiment_is_active(experiment)
        experiment_id = str(experiment.experiment_id)  # read before the commit expires it
        run_id = uuid.uuid4().hex
        artifact_uri = append_to_uri_path(
            experiment.artifact_location, run_id, Store.ARTIFACTS_FOLDER_NAME
        )
        tags = list(tags or [])
        tagged_name = _get_run_name_from_tags(tags)
        if run_name and tagged_name and run_name != tagged_name:
            raise MlflowException(
                "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with "
                f"different values (run_name='{run_name}', mlflow.runName='{tagged_name}').",
                INVALID_PARAMETER_VALUE,
            )
        run_name = run_name or tagged_name or _generate_random_name()
        if not tagged_name:
            tags.append(RunTag(key=MLFLOW_RUN_NAME, value=run_name))
        status = RunStatus.to_string(RunStatus.RUNNING)
        session.execute(
            RUNS.insert().values(
                run_uuid=run_id,
                name=run_name,
                artifact_uri=artifact_uri,
                experiment_id=int(experiment_id),
                user_id=user_id,
                status=status,
                start_time=start_time,
                end_time=None,
                deleted_time=None,
                source_type=SourceType.to_string(SourceType.UNKNOWN),
                source_name="",
                entry_point_name="",
                source_version="",
                lifecycle_stage=LifecycleStage.ACTIVE,
            )
        )
        if tags:
            rows = [{"key": tag.key, "value": tag.value, "run_uuid": run_id} for tag in tags]
            session.execute(TAGS.insert(), rows)
    info = RunInfo(
        run_id=run_id,
        experiment_id=experiment_id,
        user_id=user_id,
        status=status,
        start_time=start_time,
        end_time=None,
        lifecycle_stage=LifecycleStage.ACTIVE,
        artifact_uri=artifact_uri,
        run_name=run_name,
    )
    return Run(info, RunData(tags=tags), RunInputs(dataset_inputs=[]))


def plain_create(tags: Sequence[RunTag] | None) -> bool:
    """Whether a create_run is of the shape the fast path writes: each tag key once
    (MLflow's own code fails on a key given twice, and goes on failing so)."""
    keys = [tag.key for tag in tags or []]
    return len(keys) == len(set(keys))


def plain_batch(metrics: Sequence[Metric], tags: Sequence[RunTag]) -> bool:
    """Whether a log_batch is of the shape the fast path writes: metrics of the run
    alone (no logged model, no dataset) and no rename."""
    return not any(
        metric.model_id or metric.dataset_name or metric.dataset_digest for metric in metrics
    ) and all(tag.key != MLFLOW_RUN_NAME for tag in tags)


def log_batch(
    store: Any, run_id: str, metrics: list[Metric], params: list[Param], tags: list[RunTag]
) -> None:
    """MLflow's log_batch, its three parts in one transaction."""
    _validate_run_id(run_id)
    metrics, params, tags = _validate_batch_log_data(metrics, params, tags)
    _validate_batch_log_limits(metrics, params, tags)
    _validate_param_keys_unique(params)
    for index, metric in enumerate(metrics):
        path = "" if len(metrics) == 1 else f"metrics[{index}]"
        _validate_metric(metric.key, metric.value, metric.timestamp, metric.step, path=path)
    tags = [_validate_tag(tag.key, tag.value, path=f"tags[{i}]") for i, tag in enumerate(tags)]
    with store.ManagedSessionMaker(read_only=False) as session:
        store._check_run_is_active(store._get_run(session, run_id))
        if params:
            _insert_params(session, run_id, params)
        if metrics:
            _insert_metrics(store, session, run_id, metrics)
        if tags:
            rows = {
                tag.key: {"key": tag.key, "value": tag.value, "run_uuid": run_id} for tag in tags
            }
            upsert = insert(TAGS)
            session.execute(
                upsert.on_conflict_do_update(
                    index_elements=["key", "run_uuid"], set_={"value": upsert.excluded.value}
                ),
                list(rows.values()),
            )


def _insert_params(session: Any, run_id: str, params: Sequence[Param]) -> None:
    """New params inserted; one logged before with another value is MLflow's error."""
    logged = dict(
        session.execute(
            select(PARAMS.c.key, PARAMS.c.value).where(
                and_(PARAMS.c.run_uuid == run_id, PARAMS.c.key.in_([p.key for p in params]))
            )
        ).all()
    )
    changed = [
        {"key": p.key, "old_value": logged[p.key], "new_value": p.value}
        for p in params
        if p.key in logged and logged[p.key] != p.value
    ]
    if changed:
        raise MlflowException(
            "Changing param values is not allowed. Params were already"
            f" logged='{changed}' for run ID='{run_id}'.",
            INVALID_PARAMETER_VALUE,
        )
    new = [
        {"key": p.key, "value": p.value, "run_uuid": run_id} for p in params if p.key not in logged
    ]
    if new:
        session.execute(PARAMS.insert(), new)


def _insert_metrics(store: Any, session: Any, run_id: str, metrics: Sequence[Metric]) -> None:
    """The points, a point logged twice kept once; then each key's latest value, which
    MLflow orders by (step, timestamp, value) and replaces only by a greater one."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for metric in metrics:
        is_nan, value = store.sanitize_metric_value(metric.value)
        row = {
            "key": metric.key,
            "value": value,
            "timestamp": metric.timestamp,
            "step": metric.step,
            "is_nan": is_nan,
            "run_uuid": run_id,
        }
        rows.setdefault((metric.key, metric.timestamp, metric.step, value, is_nan), row)
    session.execute(insert(METRICS).on_conflict_do_nothing(), list(rows.values()))
    latest: dict[str, dict[str, Any]] = {}
    for row in rows.values():
        held = latest.get(row["key"])
        if held is None or _order(row) > _order(held):
            latest[row["key"]] = row
    upsert = insert(LATEST)
    new = upsert.excluded
    session.execute(
        upsert.on_conflict_do_update(
            index_elements=["key", "run_uuid"],
            set_={
                "value": new.value,
                "timestamp": new.timestamp,
                "step": new.step,
                "is_nan": new.is_nan,
            },
            where=tuple_(new.step, new.timestamp, new.value)
            > tuple_(LATEST.c.step, LATEST.c.timestamp, LATEST.c.value),
        ),
        [latest[key] for key in sorted(latest)],  # one order for all writers: no deadlock
    )


def _order(row: dict[str, Any]) -> tuple[int, int, float]:
    return (row["step"], row["timestamp"], row["value"])


def update_run_info(store: Any, run_id: str, run_status: Any, end_time: int | None) -> RunInfo:
    """MLflow's update_run_info without a rename: one UPDATE, answered from its row."""
    values: dict[str, Any] = {}
    if run_status is not None:
        values["status"] = RunStatus.to_string(run_status)
    if end_time is not None:
        values["end_time"] = end_time
    with store.ManagedSessionMaker(read_only=False) as session:
        store._check_run_is_active(store._get_run(session, run_id))
        if values:
            statement: Any = update(RUNS).where(RUNS.c.run_uuid == run_id).values(**values)
            row = session.execute(statement.returning(*RUNS.c)).one()
        else:
            row = session.execute(select(RUNS).where(RUNS.c.run_uuid == run_id)).one()
    return RunInfo(
        run_id=row.run_uuid,
        experiment_id=str(row.experiment_id),
        user_id=row.user_id,
        status=row.status,
        start_time=row.start_time,
        end_time=row.end_time,
        lifecycle_stage=row.lifecycle_stage,
        artifact_uri=row.artifact_uri,
        run_name=row.name,
    )


def install() -> bool:
    """Route MLflow's SqlAlchemyStore's three trial writes through the fast path where it
    applies; False (and MLflow left as it is) if already done."""
    if getattr(Store, INSTALLED, False):
        return False
    original: dict[str, Callable[..., Any]] = {
        name: getattr(Store, name) for name in ("create_run", "log_batch", "update_run_info")
    }

    def create(
        self: Any, experiment_id: str, user_id: str, start_time: int, tags: Any, run_name: Any
    ) -> Run:
        if _fast(self) and plain_create(tags):
            return create_run(self, experiment_id, user_id, start_time, tags, run_name)
        return original["create_run"](self, experiment_id, user_id, start_time, tags, run_name)  # type: ignore[no-any-return]

    def batch(self: Any, run_id: str, metrics: Any, params: Any, tags: Any) -> None:
        if _fast(self) and plain_batch(metrics or [], tags or []):
            return log_batch(
                self, run_id, list(metrics or []), list(params or []), list(tags or [])
            )
        return original["log_batch"](self, run_id, metrics, params, tags)  # type: ignore[no-any-return]

    def update_info(
        self: Any, run_id: str, run_status: Any, end_time: Any, run_name: Any
    ) -> RunInfo:
        if _fast(self) and not run_name:
            return update_run_info(self, run_id, run_status, end_time)
        return original["update_run_info"](self, run_id, run_status, end_time, run_name)  # type: ignore[no-any-return]

    for name, method in (
        ("create_run", create),
        ("log_batch", batch),
        ("update_run_info", update_info),
    ):
        setattr(Store, name, method)
    setattr(Store, INSTALLED, True)
    logger.info("tuner: MLflow's trial writes on PostgreSQL take the fast path")
    return True
