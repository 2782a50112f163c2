"""Multi-worker trials: each Tune trial runs Ray Train's `TorchTrainer`, Ray's "Tune +
Train" way (Ray Train V2, the default in Ray 2.60).

The Tune trial is a small driver. It asks Ray for no CPU or GPU (one byte of memory:
Ray schedules nothing on an empty request), so a trial of 2 workers x 1 CPU fits on 2
cores; Train's controller takes 0 CPUs too and makes its own placement group for the
workers, PACK or SPREAD. Because Tune then reserves nothing for the workers, tuner caps
the trials running at once at the whole sets of workers the cluster holds.

What the workers report (`ray.train.report`, rank 0's result with its checkpoint) comes
back to the driver through a queue and goes on to Ray Tune as `tune.report`, the
checkpoint copied into the trial's storage: MLflow, ASHA, Optuna, resume and the best
model see a multi-worker trial as any other. (Ray's own `TuneReportCallback` relays the
metrics only, leaving Tune without checkpoints.)
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

from tuner.engine.checkpoint_links import worker_reports_links_in
from tuner.engine.hidden_output import hidden_secrets, hide_in_output
from tuner.engine.script_args import ByName
from tuner.engine.train_without_data import torch_trainer_class
from tuner.spec import Resources, SweepSpec
from tuner.trainer.registry import BUILTINS

logger = logging.getLogger(__name__)

# Ray Train's controller polls its workers' reports this often (its default: 2 s, a
# lag of up to 2 s per epoch before Tune, MLflow and ASHA see it).
REPORT_POLL_S = "0.2"
# Off: Ray Train V2's `print` in its workers (ray/train/v2/_internal/logging/
# patch_print.py) logs each line to the root logger, whose console handler writes it to
# stderr, and prints it too, since a Ray worker's sys.stdout is never sys.__stdout__:
# each line reached the terminal twice. Unpatched, it goes to the worker's stdout or
# stderr once, as a one-process trial's does (Ray's worker log files keep it).
PRINT_PATCH = ("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")

Trainable = Callable[[dict[str, Any]], None]


def trial_resources(resources: Resources) -> dict[str, float]:
    """What Ray Tune reserves for one trial: the workers' share when it is one process,
    nothing but a byte of memory for a multi-worker trial's driver."""
    if not resources.distributed:
        return {"cpu": resources.cpu, "gpu": resources.gpu}
    return {"cpu": 0, "gpu": 0, "memory": 1}


def concurrent_trials(spec: SweepSpec, cluster: dict[str, float]) -> int | None:
    """The sweep's max_concurrent_trials; with several workers, at most the whole sets
    of workers the cluster's CPUs and GPUs hold (at least one: a trial bigger than the
    cluster is refused before this)."""
    given = spec.max_concurrent_trials
    wanted = spec.resources_per_trial
    if not wanted.distributed:
        return given
    fits = [cluster.get("CPU", 0) // (wanted.workers * wanted.cpu)]
    if wanted.gpu:
        fits.append(cluster.get("GPU", 0) // (wanted.workers * wanted.gpu))
    sets = max(1, int(min(fits)))
    return sets if given is None else min(given, sets)


def worker_function(ref: str) -> Trainable:
    """The per-worker body of built-in `ref` (imported here: it needs torch)."""
    import importlib

    module, _, name = BUILTINS[ref].worker_function.partition(":")
    function: Trainable = getattr(importlib.import_module(module), name)
    return function


def user_worker(fn: Trainable) -> Trainable:
    """A user's per-worker training function as each Ray Train worker runs it: called
    with the trial's config, as a one-process trainable is; `ray.train.get_checkpoint()`
    returns the trial's checkpoint to resume from; `ray.train.report` copies no link out
    of a checkpoint's folder (see checkpoint_links); what it prints hides the sweep's
    secrets, as a one-process trial's does (hidden_output)."""
    # Carried by name: the trial's process and each Train worker import the user's
    # module as a script without arguments (see script_args), as a one-process trial's.
    held = ByName(fn)

    def worker(loop_config: dict[str, Any]) -> None:
        from ray.train.v2._internal.execution.context import get_train_context

        checkpoint = loop_config.get("checkpoint")
        if checkpoint is not None:
            _resume_from(checkpoint)
        worker_reports_links_in(get_train_context(), loop_config.get("trial", "?"))
        hide_in_output(loop_config.get("hidden", ()))  # the config holds the secrets
        held.fn(loop_config["config"])

    return worker


def _resume_from(checkpoint: Any) -> None:
    """Hand Tune's checkpoint to `ray.train.get_checkpoint()` in this worker.

    Each start of a trial is a fresh Train run (see data_parallel), so Train itself has
    no checkpoint to give; its public resume argument is deprecated in Train V2, and the
    train loop config would make users look in two places. The worker's context holds
    what `get_checkpoint()` returns: set it before the user's function starts."""
    from ray.train.v2._internal.execution.context import get_train_context

    context = get_train_context()
    if context.checkpoint is None:
        context.checkpoint = checkpoint


class WorkerPlaced(NamedTuple):
    """A worker's word to its trial: the Ray node it runs on (see lost_peers)."""

    node_id: str


def _quiet(worker: Trainable, relay: Any) -> Trainable:
    """`worker` without Ray Train's line per report on each worker ("Reporting training
    result N: ..."): it logs them on a logger named after its file, which the
    LoggingConfig's level does not reach. It first tells the trial its node."""

    @functools.wraps(worker)
    def quiet_worker(config: dict[str, Any]) -> None:
        import ray

        relay.put(WorkerPlaced(ray.get_runtime_context().get_node_id()))
        try:
            from ray.train.v2._internal.execution import context
        except ImportError:  # another Ray layout: its lines stay
            pass
        else:
            logging.getLogger(context.__file__).setLevel(logging.WARNING)
        worker(config)

    return quiet_worker


def data_parallel(worker: Trainable, resources: Resources, name: str) -> Trainable:
    """The Tune trial body of a multi-worker trial: `worker` on `resources.workers`
    Ray Train workers, their reports relayed to Tune. Named `name` (Ray names trials
    after their function)."""

    def trial(config: dict[str, Any]) -> None:
        from ray import train, tune
        from ray.train.torch import TorchConfig
        from ray.train.v2._internal.constants import is_v2_enabled
        from ray.train.v2.api.config import LoggingConfig
        from ray.util.queue import Queue

        if not is_v2_enabled():
            raise RuntimeError(
                "multi-worker trials need Ray Train V2: unset RAY_TRAIN_V2_ENABLED (or set 1)"
            )
        # Train hands both on to its controller and workers; a user's own setting wins.
        os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", REPORT_POLL_S)
        os.environ.setdefault(*PRINT_PATCH)
        relay: Any = Queue(actor_options={"num_cpus": 0})
        per_worker = {"CPU": resources.cpu, **({"GPU": resources.gpu} if resources.gpu else {})}
        storage = _trial_storage()
        trainer = torch_trainer_class()(
            _quiet(worker, relay),
            train_loop_config={
                "config": config,
                "checkpoint": tune.get_checkpoint(),
                "trial": tune.get_context().get_trial_id(),  # named in a worker's warnings
                "hidden": hidden_secrets(),  # kept out of what the workers print
            },
            # Ray Train picks gloo on CPUs and NCCL on GPUs; said here, not left implicit.
            torch_config=TorchConfig(backend="nccl" if resources.gpu else "gloo"),
            scaling_config=train.ScalingConfig(
                num_workers=resources.workers,
                use_gpu=resources.gpu > 0,
                resources_per_worker=per_worker,
                placement_strategy=resources.placement.upper(),
            ),
            # Train V2's RunConfig at run time; Ray's annotations still name V1's.
            run_config=train.RunConfig(  # type: ignore[call-arg]
                # A fresh name per start: Train would otherwise resume its own run, and
                # Tune's checkpoint (given above) is the one a restarted trial goes on from.
                name=f"train-{uuid.uuid4().hex[:12]}",
                storage_path=storage[1],
                storage_filesystem=storage[0],
                callbacks=[_relay_callback(relay)],
                # Its INFO lines (each report, each checkpoint, the worker group) are
                # noise in the user's terminal: tuner's own lines say what happened.
                logging_config=LoggingConfig(log_level="WARNING"),
            ),
        )
        failed: list[BaseException] = []

        def fit() -> None:
            try:
                trainer.fit()
            except BaseException as exc:  # re-raised in the trial's own thread below
                failed.append(exc)
            finally:
                # Gone only when the trial left without waiting for this run to end.
                with contextlib.suppress(Exception):
                    relay.put(None)

        thread = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
        run = TrainRun(thread)
        thread.start()
        worker_nodes: set[str] = set()
        try:
            while (item := relay.get()) is not None:
                if isinstance(item, WorkerPlaced):
                    worker_nodes.add(item.node_id)
                    continue
                metrics, checkpoint, run.controller = item
                if checkpoint is None:
                    tune.report(metrics)
                else:
                    copy = tune.Checkpoint(checkpoint.path, checkpoint.filesystem)
                    tune.report(metrics, checkpoint=copy)
            thread.join()
        finally:
            # Tune stopping the trial (ASHA, a budget) leaves from a report while the
            # Train run goes on: stop it before its queue and storage go, or its workers
            # and controller fail on them, loudly, until the process ends.
            run.abort()
            relay.shutdown()
            _remove(storage)
        if failed and not run.aborted:
            raise _as_tune_counts_it(failed[0], worker_nodes)

    trial.__name__ = trial.__qualname__ = name
    trial.__mixins__ = (EndsItsTrainRun,)  # type: ignore[attr-defined]
    return trial


def _as_tune_counts_it(error: BaseException, worker_nodes: set[str]) -> BaseException:
    """What the trial raises for its Train run's failure: the death of a worker behind
    it, when one caused it. Ray Tune leaves a preempted worker's death (a drained spot
    node) out of `max_failures` only when the trial's error is that death itself; a
    multi-worker trial's is Ray Train's error around it, and counted every time. When
    only a survivor's account came (its peer gone), the cluster says whether the peer's
    node died."""
    import ray

    from tuner.engine.lost_peers import lost_peer_symptom, wait_for_node_death
    from tuner.tracking.results import lost_worker

    death = lost_worker(error)
    if death is None and worker_nodes and lost_peer_symptom(error):
        death = wait_for_node_death(worker_nodes, ray.nodes)
    if death is None:
        return error
    death.__cause__ = error  # the Train run's own account stays in the traceback
    return death


def _relay_callback(relay: Any) -> Any:
    """A Train callback (in Train's controller) that hands rank 0's result and the
    checkpoint Train persisted to the driver."""
    import ray
    from ray.train import UserCallback

    class RelayToTune(UserCallback):  # type: ignore[misc]
        def after_report(self, run_context: Any, metrics: list[Any], checkpoint: Any) -> None:
            # With the controller itself (this actor), which the trial stops if Tune
            # stops it first.
            controller = ray.get_runtime_context().current_actor
            relay.put((dict(metrics[0]), checkpoint, controller))

    return RelayToTune()


# How long a stopped trial waits for its Train run to wind down before it goes anyway.
ABORT_TIMEOUT_S = 30.0


class TrainRun:
    """The Train run a multi-worker trial's process is fitting, while it runs: its
    fitting thread and, from its first report, the controller that can abort it."""

    # At most one: a multi-worker trial's process runs one trial (no actor reuse).
    in_process: ClassVar[set[TrainRun]] = set()

    def __init__(self, fitting: threading.Thread) -> None:
        self.fitting = fitting
        self.controller: Any | None = None
        self.aborted = False
        self._lock = threading.Lock()
        TrainRun.in_process.add(self)

    def abort(self) -> None:
        """Ask Ray Train's controller to end the run, and wait for the fitting thread to
        return; a run already over is left as it ended. Safe from any thread, twice."""
        with self._lock:
            TrainRun.in_process.discard(self)
            if not self.fitting.is_alive() or self.controller is None:
                return
            self.aborted = True
            import ray

            try:
                ray.get(self.controller.abort.remote(), timeout=ABORT_TIMEOUT_S)
            except Exception:
                logger.debug("could not abort the Train run", exc_info=True)
            self.fitting.join(timeout=ABORT_TIMEOUT_S)


class EndsItsTrainRun:
    """Mixed into a multi-worker trial's Tune trainable (Ray's `__mixins__` hook).

    When Tune pauses or stops a trial (PBT's exploit, ASHA), Ray's function trainable
    ends the trial without waiting for its thread (`finish(timeout=0)`), and the process
    goes: the Train run's workers would hold their CPUs and GPUs until Ray notices their
    owner is gone, and the trial that takes its place (the exploited trial, on the same
    resources) waits for them. Its cleanup ends the Train run first."""

    def cleanup(self) -> None:
        for run in list(TrainRun.in_process):
            run.abort()
        super().cleanup()  # type: ignore[misc]


def _trial_storage() -> tuple[Any, str]:
    """(filesystem, path) where the Train run keeps its checkpoints until Tune copied
    them: beside the trial's own, so every node of a cluster reaches it."""
    from ray.train._internal.session import get_session

    session = get_session()
    storage = session.storage if session is not None else None
    if storage is None:  # not inside a Tune trial: Train's own default
        import pyarrow.fs

        return pyarrow.fs.LocalFileSystem(), os.path.expanduser("~/ray_results")
    return storage.storage_filesystem, f"{storage.trial_fs_path}/train-runs"


def _remove(storage: tuple[Any, str]) -> None:
    """Tune holds its copies of the checkpoints: the Train runs' folder goes."""
    filesystem, path = storage
    if path.endswith("/train-runs"):
        with contextlib.suppress(FileNotFoundError, OSError):
            filesystem.delete_dir(path)
