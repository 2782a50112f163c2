"""The Tune callback that makes each trial a child run of the sweep's parent run."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from mlflow.entities import Metric, RunStatus
from ray.air.constants import EXPR_RESULT_FILE
from ray.tune import Callback

from tuner.search.early_stops import EarlyStops
from tuner.search.pbt import Lineage
from tuner.spec import Resources
from tuner.spec.schema import CostPrices
from tuner.tracking.cost import CostLedger
from tuner.tracking.datasets import DatasetFields
from tuner.tracking.lost_work import LostWork, seconds_text
from tuner.tracking.node_prices import NodePrices
from tuner.tracking.operations import CopyOwnLogs
from tuner.tracking.own_logs import FOLDER as OWN_LOGS
from tuner.tracking.results import (
    as_number,
    error_summary,
    loggable_points,
    metric_points,
    param_value,
    restart_reason,
    result_step,
    run_name,
)
from tuner.tracking.runs import ExistingRun
from tuner.tracking.tags import (
    TAG_CHECKPOINT,
    TAG_ERROR,
    TAG_EXPLOIT,
    TAG_EXPLOITS,
    TAG_KILLED,
    TAG_LOST_WORK,
    TAG_PARENT,
    TAG_RESTART_REASON,
    TAG_RESTARTS,
    TAG_ROLE,
    TAG_STOP_REASON,
    TAG_STOPPED_AT,
    TAG_STOPPED_EARLY,
    TAG_TRIAL_ID,
    TAG_WORKERS,
)
from tuner.tracking.tally import SWEEP_RUN, SweepTally, state_of
from tuner.tracking.writer import CreateRun, EndRun, LogMetrics, ReopenRun, SetTags, TrackingWriter


class TrialTracker(Callback):  # type: ignore[misc]
    """Tune callback: each trial becomes a child run of the sweep's parent run."""

    def __init__(
        self,
        writer: TrackingWriter,
        parent_run_id: str,
        searched_names: Iterable[str],
        early_stops: EarlyStops,
        checkpoint_uri: Callable[[str], str],
        prices: CostPrices | None = None,
        dataset: DatasetFields | None = None,
        lineage: Lineage | None = None,
        resources: Resources | None = None,
        objective: tuple[str, str] | None = None,
        own_logs: bool = False,
    ) -> None:
        self._writer = writer
        self._own_logs = own_logs  # the trainable is the user's: copy its own MLflow logs
        # (metric, mode): keep the counts `tuner status` reads from the sweep's run
        # (tuner.tracking.tally), written through the writer like a trial's tags.
        self._tally = SweepTally(*objective) if objective is not None else None
        writer.adopt(SWEEP_RUN, parent_run_id)
        # A multi-worker trial's Tune placement holds none of its workers' CPUs and GPUs
        # (tuner.engine.multi_worker): its run is tagged with them, its cost counts them.
        self._workers = resources if resources is not None and resources.distributed else None
        # A PBT sweep's: each result logs the values it trained with (hp.<name>), each
        # exploit is tagged on the trial's run.
        self._lineage = lineage
        self._exploits_tagged: dict[str, int] = {}
        self._dataset = dataset  # the data every trial trains on, when the sweep fixes it
        self._parent_run_id = parent_run_id
        self._searched = list(searched_names)
        self._early_stops = early_stops
        self._checkpoint_uri = checkpoint_uri
        self._started: set[str] = set()
        self._open: set[str] = set()  # runs this driver created or reopened, not yet ended
        self._stop_reasons: dict[str, str] = {}
        self._refused: dict[str, str] = {}  # metric names MLflow refuses, warned about once
        # Per trial: (step, Tune's iteration) of the last result logged. A restarted trial
        # re-reports from its checkpoint's iteration, so a result at or before this pair
        # was logged already; a later one always lands, whatever its step (0 included,
        # or several reports within one epoch).
        self._last_logged: dict[str, tuple[int, float]] = {}
        self._existing: dict[str, ExistingRun] = {}
        self.restarts: dict[str, int] = {}  # trial id -> restarts from a checkpoint
        self.errors: dict[str, str] = {}  # trial id -> its error's line, in order of failure
        self.cost = CostLedger()
        self.lost_work = LostWork()  # training redone after restarts, per trial
        self._prices = prices
        # Without the sweep file's prices, each node's own (a cluster's instance table).
        self._node_prices = NodePrices() if prices is None else None

    def continue_runs(self, existing: dict[str, ExistingRun]) -> None:
        """After a resume: trials Ray Tune restores keep their runs and logged steps."""
        self._existing = dict(existing)
        for trial_id, run in existing.items():
            self._writer.adopt(trial_id, run.run_id)
            self._started.add(trial_id)
            if run.last_step is not None:
                # The iteration is not in MLflow: every result at that step was logged.
                self._last_logged[trial_id] = (run.last_step, math.inf)
            if run.restarts:
                self.restarts[trial_id] = run.restarts
            if run.lost_work_s:
                self.lost_work.seconds[trial_id] = run.lost_work_s
            if run.stopped_early:
                self._early_stops.add(trial_id)
            self.cost.carry_over(trial_id, run.held)
            if self._tally is not None:
                self._tally.seed(trial_id, run.record)
        if self._tally is not None:  # replaces the last driver's counts, final or not
            self._writer.submit(SetTags(SWEEP_RUN, self._tally.tag()))

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles callbacks into the experiment for restore; a restore brings its
        # own writer, and a thread cannot be pickled.
        return {**self.__dict__, "_writer": None}

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        held = _placed(trial)
        if self._workers is not None:
            held = (
                self._workers.workers * self._workers.cpu,
                self._workers.workers * self._workers.gpu,
            )
        self.cost.start(trial.trial_id, *held)
        self.lost_work.started(trial.trial_id)
        # A restored trial runs again in the run it had: reopen that run once.
        existing = self._existing.pop(trial.trial_id, None)
        if existing is not None:
            self._writer.submit(ReopenRun(trial.trial_id, existing.stale_tags))
            self._open.add(trial.trial_id)
            if self._tally is not None:
                self._tally.running(trial.trial_id)
            self._backfill(trial)
            return
        self._create_run(trial)

    def _create_run(self, trial: Any) -> None:
        # Called again when a failed trial restarts: its run and params are already there.
        if trial.trial_id in self._started:
            return
        self._started.add(trial.trial_id)
        self._open.add(trial.trial_id)
        # A conditional param whose condition failed is absent: no param, not "None".
        params = {
            name: param_value(trial.config[name]) for name in self._searched if name in trial.config
        }
        tags = {
            TAG_PARENT: self._parent_run_id,
            TAG_ROLE: "trial",
            TAG_TRIAL_ID: trial.trial_id,
        }
        if self._workers is not None:
            tags[TAG_WORKERS] = self._workers.described()
        name = run_name(trial.trial_id, params)
        self._writer.submit(CreateRun(trial.trial_id, name, params, tags, self._dataset))
        if self._tally is not None:
            self._tally.running(trial.trial_id, tags.get(TAG_WORKERS))

    def _backfill(self, trial: Any) -> None:
        """Log the results a lost driver received but had not written yet.

        The trial resumes from the checkpoint in Ray's last experiment snapshot; the
        results before it are not reported again, but Ray kept them in the trial's
        result.json, uploaded with that same snapshot.
        """
        try:
            with trial.storage.storage_filesystem.open_input_stream(
                f"{trial.path}/{EXPR_RESULT_FILE}"
            ) as stream:
                lines = stream.read().decode().splitlines()
        except (OSError, AttributeError):  # no results saved yet: nothing was lost
            return
        for line in lines:
            try:
                result = json.loads(line)
            except json.JSONDecodeError:  # a line cut off by the crash
                continue
            if isinstance(result, dict):
                self.on_trial_result(0, [], trial, result)

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        if self._node_prices is not None and not self.cost.is_located(trial.trial_id):
            node_ip = result.get("node_ip")  # Tune adds where the result came from
            price = self._node_prices.for_ip(node_ip if isinstance(node_ip, str) else None)
            self.cost.locate(trial.trial_id, price)
        step = result_step(result)
        tune_iteration = as_number(result.get("training_iteration")) or 0.0
        last = self._last_logged.get(trial.trial_id)
        # A trial restarted from an older checkpoint re-reports epochs: log each once,
        # and count their training as lost work.
        repeated = last is not None and (step, tune_iteration) <= last
        self.lost_work.result(trial.trial_id, result, repeated=repeated)
        if repeated:
            return
        self._last_logged[trial.trial_id] = (step, tune_iteration)
        if isinstance(result.get("stop_reason"), str):
            self._stop_reasons[trial.trial_id] = result["stop_reason"]
        timestamp = int(result.get("timestamp", time.time()) * 1000)
        # NaN and infinity are logged too (MLflow stores them): a diverging metric is
        # exactly what a user needs to see.
        points = loggable_points(metric_points(result), self._refused)
        if self._lineage is not None:
            # The config the worker reported this result with: Ray runs PBT's
            # on_trial_result first, and an exploit there has already given
            # trial.config the values the trial goes on with.
            config = result.get("config")
            points |= self._lineage.hp_points(config if isinstance(config, dict) else trial.config)
            self._tag_exploits(trial.trial_id)
        metrics = tuple(Metric(key, value, timestamp, step) for key, value in points.items())
        if self._tally is not None and self._tally.metric in points:
            self._tally.value(trial.trial_id, points[self._tally.metric])
        if metrics:
            self._writer.submit(LogMetrics(trial.trial_id, metrics))

    def _tag_exploits(self, trial_id: str) -> None:
        assert self._lineage is not None
        exploits = self._lineage.exploits.get(trial_id, [])
        if len(exploits) == self._exploits_tagged.get(trial_id, 0):
            return
        self._exploits_tagged[trial_id] = len(exploits)
        # The latest last: MLflow cuts a tag at 8,000 characters.
        shown = [
            {"epoch": e.epoch, "from_trial": e.donor, "from_epoch": e.donor_epoch}
            for e in exploits[-80:]
        ]
        tags = {TAG_EXPLOIT: json.dumps(shown), TAG_EXPLOITS: str(len(exploits))}
        self._writer.submit(SetTags(trial_id, tags))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._copy_own_logs(trial)
        tags = self._checkpoint_tag(trial)
        if trial.trial_id in self._stop_reasons:
            tags[TAG_STOP_REASON] = self._stop_reasons[trial.trial_id][:5000]
        status = RunStatus.to_string(RunStatus.FINISHED)
        if trial.trial_id in self._early_stops:
            status = RunStatus.to_string(RunStatus.KILLED)
            tags[TAG_STOPPED_EARLY] = "asha"
            last = self._last_logged.get(trial.trial_id)
            if last is not None:
                tags[TAG_STOPPED_AT] = str(last[0])
        self._end(trial.trial_id, status, tags)

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial lost its worker and will restart from its last checkpoint."""
        self.cost.stop(trial.trial_id)  # held again from its restart
        self.lost_work.worker_lost(trial.trial_id)
        restarts = self.restarts.get(trial.trial_id, 0) + 1
        self.restarts[trial.trial_id] = restarts
        tags = {
            TAG_RESTARTS: str(restarts),
            TAG_RESTART_REASON: restart_reason(trial),
            TAG_LOST_WORK: seconds_text(self.lost_work.of(trial.trial_id)),
        }
        self._writer.submit(SetTags(trial.trial_id, tags))
        if self._tally is not None:
            self._tally.lost_work(trial.trial_id, self.lost_work.of(trial.trial_id))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        # A trial that failed to start (its worker could not be made or reused) has a
        # run too: it is a trial the user asked for, and this is where it ended.
        self._create_run(trial)
        self._copy_own_logs(trial)
        tags = self._checkpoint_tag(trial)
        tags[TAG_ERROR] = self.errors[trial.trial_id] = error_summary(trial)
        self._end(trial.trial_id, RunStatus.to_string(RunStatus.FAILED), tags)

    def restart_tags(self) -> dict[str, str]:
        """The sweep run's: trials that restarted after losing a worker, and the
        training they redid."""
        return {
            "tuner.restarted_trials": str(len(self.restarts)),
            TAG_LOST_WORK: seconds_text(self.lost_work.total()),
        }

    def end_open_runs(self, reason: str) -> None:
        """Close the runs of trials cut off by an interrupt: KILLED, with the reason."""
        for trial_id in list(self._open):
            self._end(trial_id, RunStatus.to_string(RunStatus.KILLED), {TAG_KILLED: reason})
        if self._tally is not None:  # every run has ended: the counts are final
            self._writer.submit(SetTags(SWEEP_RUN, self._tally.tag(final=True)))

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if self._tally is not None and self._tally.due():
            self._writer.submit(SetTags(SWEEP_RUN, self._tally.tag()))

    def _end(self, trial_id: str, status: str, tags: dict[str, str]) -> None:
        self._open.discard(trial_id)
        held = self.cost.end(trial_id)
        step = self._last_logged.pop(trial_id, (0, 0.0))[0]
        now = int(time.time() * 1000)
        points = tuple(
            Metric(key, value, now, step) for key, value in held.metrics(self._prices).items()
        )
        self._writer.submit(LogMetrics(trial_id, points))
        tags = {**tags, TAG_LOST_WORK: seconds_text(self.lost_work.of(trial_id))}
        self._writer.submit(EndRun(trial_id, status, tags))
        if self._tally is not None:
            held_now = {point.key: point.value for point in points}
            state = state_of(status, stopped_early=TAG_STOPPED_EARLY in tags)
            self._tally.ended(trial_id, state, held_now, self.lost_work.of(trial_id))
        # An ended trial gets no more results: what only its results needed goes, so a
        # long sweep keeps per trial only its run id, and its error or restarts if any.
        self.lost_work.ended(trial_id)
        self._stop_reasons.pop(trial_id, None)
        self._exploits_tagged.pop(trial_id, None)

    def _copy_own_logs(self, trial: Any) -> None:
        storage = getattr(trial, "storage", None)  # before the run ends: seen whole once ended
        if self._own_logs and storage is not None:
            location = self._checkpoint_uri(f"{storage.trial_fs_path}/{OWN_LOGS}")
            self._writer.submit(CopyOwnLogs(trial.trial_id, location))

    def _checkpoint_tag(self, trial: Any) -> dict[str, str]:
        checkpoint = trial.checkpoint
        return {TAG_CHECKPOINT: self._checkpoint_uri(checkpoint.path)} if checkpoint else {}


def _placed(trial: Any) -> tuple[float, float]:
    """(CPUs, GPUs) Ray placed the trial on, as its placement group asked for them."""
    try:
        resources = trial.placement_group_factory.required_resources
    except AttributeError:  # no placement known: nothing held that can be counted
        return 0.0, 0.0
    return float(resources.get("CPU", 0.0)), float(resources.get("GPU", 0.0))
