"""A multi-objective sweep's Pareto front in MLflow: written when the sweep ends, read
back by `tuner best`. The sweep's run names the front's runs; each of them is tagged."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Run, RunTag

from tuner.tracking.tags import (
    TAG_OBJECTIVES,
    TAG_PARETO,
    TAG_PARETO_RUNS,
    TAG_PARETO_SIZE,
    TAG_STOPPED_EARLY,
    TAG_TRIAL_ID,
)

# MLflow takes tag values up to 8,000 characters: about 240 run ids of 32.
MAX_TAG_CHARS = 8000


@dataclass(frozen=True)
class FrontTrial:
    trial_id: str
    run_id: str | None
    values: dict[str, float]  # each objective's final value
    params: dict[str, Any]
    # ASHA stopped it: on the front only when no trial trained to its end (front.py).
    stopped_early: bool = False


def record_front(
    client: MlflowClient,
    parent_run_id: str,
    objectives: list[tuple[str, str]],
    front: list[FrontTrial],
) -> None:
    runs = [trial.run_id for trial in front if trial.run_id]
    for run_id in runs:
        client.set_tag(run_id, TAG_PARETO, "true")
    listed: list[str] = []
    for run_id in runs:  # the front's best on the first objective first
        if len(",".join([*listed, run_id])) > MAX_TAG_CHARS:
            break
        listed.append(run_id)
    tags = {
        TAG_OBJECTIVES: json.dumps(objectives),
        TAG_PARETO_RUNS: ",".join(listed),
        TAG_PARETO_SIZE: str(len(front)),
    }
    client.log_batch(parent_run_id, tags=[RunTag(k, v) for k, v in tags.items()])


def read_front(client: MlflowClient, parent: Run) -> tuple[list[tuple[str, str]], list[FrontTrial]]:
    """(objectives, front) of a sweep's run; an empty front for a single objective."""
    tags = parent.data.tags
    if TAG_OBJECTIVES not in tags:
        return [], []
    objectives = [(str(metric), str(mode)) for metric, mode in json.loads(tags[TAG_OBJECTIVES])]
    front = []
    for run_id in filter(None, tags.get(TAG_PARETO_RUNS, "").split(",")):
        run = client.get_run(run_id)
        front.append(
            FrontTrial(
                trial_id=run.data.tags.get(TAG_TRIAL_ID, ""),
                run_id=run_id,
                values={m: run.data.metrics[m] for m, _ in objectives if m in run.data.metrics},
                params=dict(run.data.params),
                stopped_early=TAG_STOPPED_EARLY in run.data.tags,
            )
        )
    return objectives, front
