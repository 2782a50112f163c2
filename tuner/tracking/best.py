"""Read a finished sweep back from MLflow: what `tuner best` prints."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mlflow import MlflowClient

from tuner.tracking.tags import TAG_BEST_RUN, TAG_CHECKPOINT, TAG_ROLE, TAG_TRIAL_ID


class SweepNotFound(LookupError):
    pass


@dataclass(frozen=True)
class BestReport:
    sweep: str
    parent_run_id: str
    run_id: str
    trial_id: str
    metric: str
    mode: str
    value: float
    params: dict[str, str]
    checkpoint: str | None
    experiment_id: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def best_of_sweep(name: str, tracking_uri: str) -> BestReport:
    """The best trial of the latest finished sweep called `name`."""
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise SweepNotFound(f"no sweep named {name!r} in {tracking_uri}")
    parents = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{TAG_ROLE}` = 'sweep' and tags.`{TAG_BEST_RUN}` != ''",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not parents:
        raise SweepNotFound(
            f"sweep {name!r} in {tracking_uri} has no finished run with a best trial"
        )
    parent = parents[0]
    metric = parent.data.tags["tuner.metric"]
    run = client.get_run(parent.data.tags[TAG_BEST_RUN])
    if metric not in run.data.metrics:
        raise SweepNotFound(
            f"sweep {name!r}: its best trial's run {run.info.run_id} has no metric {metric!r}"
        )
    return BestReport(
        sweep=name,
        parent_run_id=parent.info.run_id,
        run_id=run.info.run_id,
        trial_id=run.data.tags.get(TAG_TRIAL_ID, ""),
        metric=metric,
        mode=parent.data.tags["tuner.mode"],
        value=run.data.metrics[metric],
        params=dict(run.data.params),
        checkpoint=run.data.tags.get(TAG_CHECKPOINT),
        experiment_id=experiment.experiment_id,
    )
