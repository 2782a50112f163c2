"""A sweep's runs in MLflow: the parent run, finding it again, and its trials' child runs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run, RunStatus, RunTag

from tuner.spec import SweepSpec
from tuner.tracking.cost import COST_USD, CPU_HOURS, GPU_HOURS, Held
from tuner.tracking.datasets import DatasetFields, dataset_input
from tuner.tracking.first_use import experiment_id_for, sqlite_database, store_opened_alone
from tuner.tracking.histories import metric_histories
from tuner.tracking.results import (
    param_value,
)
from tuner.tracking.tags import (
    END_TAGS,
    TAG_BEST_RUN,
    TAG_BEST_TRIAL,
    TAG_EXPERIMENT_PATH,
    TAG_LOST_WORK,
    TAG_PARENT,
    TAG_RESTARTS,
    TAG_ROLE,
    TAG_STOPPED_EARLY,
    TAG_TRIAL_ID,
    TAG_WORKERS,
)
from tuner.tracking.tally import RUNNING, TrialRecord, state_of


@dataclass(frozen=True)
class ExistingRun:
    """A trial's child run from before a resume, and how far it got."""

    run_id: str
    last_step: int | None  # None: no point logged yet (a first step may well be 0)
    stale_tags: tuple[str, ...]  # end-of-run tags to drop if the trial runs again
    stopped_early: bool
    restarts: int
    held: Held = field(default_factory=Held)  # resource-hours its trial held before
    lost_work_s: float = 0.0  # training it redid after restarts, before this resume
    # What the sweep's counts (tuner.tracking.tally) take from it until it runs again.
    record: TrialRecord = field(default_factory=lambda: TrialRecord(RUNNING))


# Runs per search_runs request: MLflow answers at most 50,000, and fewer, larger pages
# cost fewer round trips to a tracking server than its default 1,000.
SEARCH_PAGE_SIZE = 5000


def child_runs(
    client: MlflowClient, experiment_id: str, parent_run_id: str, page_size: int = SEARCH_PAGE_SIZE
) -> list[Run]:
    """Every run under a sweep's parent run, one per trial, however many pages they fill."""
    runs: list[Run] = []
    token: str | None = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{TAG_PARENT}` = '{parent_run_id}'",
            max_results=page_size,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def existing_trial_runs(
    client: MlflowClient, experiment_id: str, parent_run_id: str, metric: str
) -> dict[str, ExistingRun]:
    """The sweep's child runs by trial id, with the last step each logged."""
    existing = {}
    trials = [run for run in child_runs(client, experiment_id, parent_run_id)
              if TAG_TRIAL_ID in run.data.tags]  # fmt: skip
    # Finished runs too: Ray restores a trial as its last experiment snapshot saw it,
    # and a trial that finished after that snapshot runs (and reports) again.
    histories = metric_histories(client, [run.info.run_id for run in trials], metric)
    for run in trials:
        tags = run.data.tags
        last_step = max(histories[run.info.run_id], default=None)
        existing[tags[TAG_TRIAL_ID]] = ExistingRun(
            run_id=run.info.run_id,
            last_step=last_step,
            stale_tags=tuple(tag for tag in END_TAGS if tag in tags),
            stopped_early=TAG_STOPPED_EARLY in tags,
            restarts=int(tags.get(TAG_RESTARTS, "0")),
            held=held_before(run.data.metrics),
            lost_work_s=float(tags.get(TAG_LOST_WORK, "0") or 0),
            record=trial_record(run, metric),
        )
    return existing


def trial_record(run: Run, metric: str | None) -> TrialRecord:
    """What the sweep's counts (tuner.tracking.tally) take from a trial's run."""
    tags, metrics = run.data.tags, run.data.metrics
    return TrialRecord(
        state_of(run.info.status, stopped_early=TAG_STOPPED_EARLY in tags),
        value=metrics.get(metric) if metric else None,
        held={key: metrics[key] for key in (CPU_HOURS, GPU_HOURS, COST_USD) if key in metrics},
        lost_work_s=_seconds(tags.get(TAG_LOST_WORK)),
        workers=tags.get(TAG_WORKERS),
    )


def _seconds(tag: str | None) -> float:
    try:
        return float(tag) if tag else 0.0
    except ValueError:  # a tag someone edited: it counts for nothing
        return 0.0


def held_before(metrics: dict[str, float]) -> Held:
    """What a run recorded its trial held (and, at its nodes' prices, cost) so far."""
    cpu, gpu = metrics.get(CPU_HOURS, 0.0), metrics.get(GPU_HOURS, 0.0)
    usd = metrics.get(COST_USD)
    return Held(cpu, gpu, usd or 0.0, node_priced=usd is not None)


def find_sweep_run(
    client: MlflowClient, sweep: str, tag: str, value: str
) -> tuple[str, Run] | None:
    """(experiment id, parent run) of the sweep run whose `tag` is `value`, if any."""
    experiment = client.get_experiment_by_name(sweep)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{TAG_ROLE}` = 'sweep' and tags.`{tag}` = '{value}'",
        max_results=1,
    )
    return (experiment.experiment_id, runs[0]) if runs else None


def artifact_root(tracking_uri: str) -> Path | None:
    """Where a new experiment's artifacts go: beside a SQLite store's file.

    MLflow's default for a database store is ./mlruns of whatever directory the command
    ran in, so checkpoints and models of one store end up scattered over working folders.
    A tracking server decides for itself (None).
    """
    database = sqlite_database(tracking_uri)
    return database.parent / "mlartifacts" if database is not None else None


class SweepRun:
    """The sweep's parent run: created before Ray starts, closed with the best trial."""

    def __init__(self, client: MlflowClient, experiment_id: str, run_id: str) -> None:
        self.client = client
        self.experiment_id = experiment_id
        self.run_id = run_id

    @classmethod
    def start(cls, spec: SweepSpec, spec_path: Path | None, tracking_uri: str) -> SweepRun:
        """`spec` is the sweep without its secrets; `spec_path` its file, logged as it is
        unless None (then the spec is logged as YAML)."""
        root = artifact_root(tracking_uri)
        # An existing experiment keeps its artifact location: runs already point there.
        location = (root / spec.name).as_uri() if root is not None else None
        with store_opened_alone(tracking_uri):  # a new client opens (creates) the store
            client = MlflowClient(tracking_uri)
            experiment_id = experiment_id_for(client, spec.name, location)
        tags = {
            TAG_ROLE: "sweep",
            "tuner.trainable": spec.trainable,
            "tuner.searcher": spec.searcher_label,
            "tuner.scheduler": spec.scheduler.kind,
            "tuner.metric": spec.metric,
            "tuner.mode": spec.mode,
        }
        run = client.create_run(experiment_id, run_name=spec.name, tags=tags)
        sweep = cls(client, experiment_id, run.info.run_id)
        params = {
            "num_samples": str(spec.num_samples),
            "searcher": spec.searcher.model_dump_json(),
            "scheduler": spec.scheduler.model_dump_json(),
            **{f"config.{key}": param_value(value) for key, value in spec.config.items()},
        }
        client.log_batch(sweep.run_id, params=[Param(k, v) for k, v in params.items()])
        if spec_path is not None:
            client.log_artifact(sweep.run_id, str(spec_path), artifact_path="spec")
        else:  # a sweep whose file held secrets, or one resumed from its storage
            client.log_text(sweep.run_id, spec.as_yaml(), f"spec/{spec.name}.yaml")
        return sweep

    @classmethod
    def find(cls, spec: SweepSpec, tracking_uri: str, experiment_path: str) -> SweepRun | None:
        """The parent run of the sweep kept at `experiment_path`; None if none exists."""
        client = MlflowClient(tracking_uri)
        found = find_sweep_run(client, spec.name, TAG_EXPERIMENT_PATH, experiment_path)
        if found is None:
            return None
        experiment_id, run = found
        return cls(client, experiment_id, run.info.run_id)

    def reopen(self, tags: dict[str, str]) -> None:
        """A resumed sweep's run is RUNNING again and counts its resumes; `tags`: the
        run's tags as just read."""
        resumes = int(tags.get("tuner.resumes", "0")) + 1
        self.client.update_run(self.run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        self.set_tags({"tuner.resumes": str(resumes)})

    def set_tags(self, tags: dict[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def forget_tag(self, name: str) -> None:
        self.client.delete_tag(self.run_id, name)

    @property
    def artifact_location(self) -> str:
        """Where this sweep's experiment keeps its artifacts (checkpoints, models)."""
        return str(self.client.get_experiment(self.experiment_id).artifact_location)

    def record_best(
        self,
        metric: str,
        value: float,
        params: dict[str, Any],
        trial_id: str,
        run_id: str | None,
        *,
        for_now: bool = False,
    ) -> None:
        """`best.<param>` params, `best_<metric>`, the best trial's tags. `for_now`: the
        sweep may go on (its budget stopped it), and MLflow never changes a param once
        logged: the params go in tags `best.<param>` instead, until the final best."""
        tags = [RunTag(TAG_BEST_TRIAL, trial_id)]
        if run_id:
            tags.append(RunTag(TAG_BEST_RUN, run_id))
        best = {f"best.{k}": param_value(v) for k, v in params.items()}
        if for_now:
            tags += [RunTag(k, v) for k, v in best.items()]
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(f"best_{metric}", value, int(time.time() * 1000), 0)],
            params=[] if for_now else [Param(k, v) for k, v in best.items()],
            tags=tags,
        )

    def record_cost(self, metrics: dict[str, float]) -> None:
        """The sweep's resource-hours (and dollars): the sums of its trials'."""
        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()]
        )

    def record_test(
        self, metrics: dict[str, float], best_run_id: str, model_id: str | None = None
    ) -> None:
        """The best model's test-split score, on the parent run and on the best trial's
        run, there as the logged model's metrics too (`model_id`)."""
        if not metrics:
            return
        now = int(time.time() * 1000)
        points = [Metric(key, value, now, 0) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=points)
        linked = [Metric(key, value, now, 0, model_id=model_id) for key, value in metrics.items()]
        self.client.log_batch(best_run_id, metrics=linked)

    def record_dataset(self, dataset: DatasetFields | None) -> None:
        """The data the sweep's trials train on, as the sweep run's dataset input."""
        if dataset is not None:
            self.client.log_inputs(self.run_id, datasets=[dataset_input(dataset)])

    def finish(self, status: int, tags: dict[str, str] | None = None) -> None:
        """Close the parent run; `status` is a RunStatus value (FINISHED, FAILED, KILLED)."""
        if tags:
            self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        self.client.set_terminated(self.run_id, status=RunStatus.to_string(status))
