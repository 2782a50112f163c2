"""Read a finished sweep back from MLflow: what `tuner best` prints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Run

from tuner.tracking.first_use import deleted_line

# SweepNotFound is where commands have always imported it from.
from tuner.tracking.logged_params import SweepNotFound as SweepNotFound
from tuner.tracking.logged_params import typed_params
from tuner.tracking.pareto_runs import FrontTrial, read_front
from tuner.tracking.tags import (
    TAG_BEST_RUN,
    TAG_CHECKPOINT,
    TAG_CLASSES,
    TAG_EXPERIMENT_PATH,
    TAG_ROLE,
    TAG_SCHEDULE,
    TAG_TRIAL_ID,
)


@dataclass(frozen=True)
class BestReport:
    sweep: str
    parent_run_id: str
    run_id: str
    trial_id: str
    metric: str
    mode: str
    value: float
    params: dict[str, Any]  # typed by the sweep file: 0.01, not "0.01"
    checkpoint: str | None
    experiment_id: str
    # Several objectives: [[metric, mode], ...] and the Pareto front's trials.
    objectives: list[tuple[str, str]] = field(default_factory=list)
    front: list[FrontTrial] = field(default_factory=list)
    # Population-based training: the values the best weights were trained with, by the
    # epoch each started at (its donors' included), as YAML for a sweep's config.
    schedule: str | None = None
    # A built-in classifier's model: where its class names are (output i is entry i).
    classes: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def latest_sweep_run(
    client: MlflowClient, name: str, tracking_uri: str, *, finished: bool
) -> tuple[str, Run]:
    """(experiment id, parent run) of the latest run of sweep `name`; with `finished`,
    the one that recorded a best trial and ended last."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise SweepNotFound(f"no sweep named {name!r} in {tracking_uri}")
    if (deleted := deleted_line(experiment, tracking_uri)) is not None:
        raise SweepNotFound(deleted)
    condition = f"tags.`{TAG_ROLE}` = 'sweep'"
    if finished:
        condition += f" and tags.`{TAG_BEST_RUN}` != ''"

    # Finished: the one that ended last. A sweep interrupted, then resumed after a later
    # one finished, is the latest finished once it ends, though it started first.
    order = ["attributes.end_time DESC"] if finished else []

    def latest(where: str) -> list[Run]:
        return client.search_runs(
            [experiment.experiment_id],
            filter_string=where,
            order_by=[*order, "attributes.start_time DESC"],
            max_results=1,
        )

    # A start cut off before its trials (Ctrl-C while Ray started, no cluster) leaves a
    # sweep run with no trials and no experiment path: it must not hide the sweep before.
    parents = latest(f"{condition} and tags.`{TAG_EXPERIMENT_PATH}` != ''") or latest(condition)
    if not parents and finished:
        unfinished = client.search_runs(
            [experiment.experiment_id],
            f"tags.`{TAG_ROLE}` = 'sweep'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        raise SweepNotFound(
            f"sweep {name!r} in {tracking_uri} has no finished run with a best trial"
            + (_why_unfinished(name, unfinished[0]) if unfinished else "")
        )
    if not parents:
        raise SweepNotFound(f"experiment {name!r} in {tracking_uri} holds no tuner sweep")
    return experiment.experiment_id, parents[0]


def _why_unfinished(name: str, latest: Run) -> str:
    """What became of the sweep's latest run, and the command that finishes it."""
    status = latest.info.status
    if status == "RUNNING":  # or its driver died without a word
        return f"; its latest run is still RUNNING (if its driver is gone, `tuner resume {name}`)"
    if status == "KILLED":
        return f"; its latest run was interrupted: `tuner resume {name}` finishes it"
    return f"; its latest run ended {status}"


def best_of_sweep(name: str, tracking_uri: str) -> BestReport:
    """The best trial of the latest finished sweep called `name`."""
    client = MlflowClient(tracking_uri)
    experiment_id, parent = latest_sweep_run(client, name, tracking_uri, finished=True)
    metric = parent.data.tags["tuner.metric"]
    run = client.get_run(parent.data.tags[TAG_BEST_RUN])
    if metric not in run.data.metrics:
        raise SweepNotFound(
            f"sweep {name!r}: its best trial's run {run.info.run_id} has no metric {metric!r}"
        )
    as_trained = typed_params(client, parent)
    objectives, front = read_front(client, parent)
    # A script reading `tuner best --json` gets numbers where the trials had numbers.
    front = [replace(trial, params=as_trained(trial.params)) for trial in front]
    return BestReport(
        objectives=objectives,
        front=front,
        sweep=name,
        parent_run_id=parent.info.run_id,
        run_id=run.info.run_id,
        trial_id=run.data.tags.get(TAG_TRIAL_ID, ""),
        metric=metric,
        mode=parent.data.tags["tuner.mode"],
        value=run.data.metrics[metric],
        params=as_trained(dict(run.data.params)),
        checkpoint=run.data.tags.get(TAG_CHECKPOINT),
        experiment_id=experiment_id,
        schedule=parent.data.tags.get(TAG_SCHEDULE),
        classes=_artifact_uri(run, run.data.tags.get(TAG_CLASSES)),
    )


def _artifact_uri(run: Run, path: str | None) -> str | None:
    return f"runs:/{run.info.run_id}/{path}" if path else None
