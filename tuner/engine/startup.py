"""Starting a sweep: Ray, the sweep's parent run in MLflow, the trainable's import.

On an embedded run the three overlap: Ray's start waits on its processes, opening the
tracking store (its schema, the first time) waits on SQLite, and importing a user's
trainable may take as long as its own imports (a built-in's entry point imports no
torch: tuner.trainer.classifier); one after another they cost the sum (seen here, when
a built-in still imported torch: 2.5 s, 1.7 s and 1.3 s on 2 cores). Joining a cluster
keeps the old order, so that a cluster that refuses us leaves no run behind.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import ray
from mlflow.entities import RunStatus

from tuner.engine.phases import Phases
from tuner.engine.session import needs_state_api, start_or_join
from tuner.engine.trainables import resolve_trainable
from tuner.spec import SweepSpec
from tuner.tracking.runs import SweepRun

T = TypeVar("T")


def start_sweep(
    spec: SweepSpec,
    *,
    address: str | None,
    num_cpus: int | None,
    tracking_uri: str,
    spec_path: Path | None,
    phases: Phases,
) -> tuple[SweepRun, bool]:
    """(the sweep's parent run, whether this process started Ray and must shut it down).

    `address`: a cluster to join; None starts an embedded Ray (unless one is running).
    """
    if address is not None or ray.is_initialized():
        with phases.phase("ray start"):
            started_ray = start_or_join(address, num_cpus, state_api=needs_state_api(spec))
        try:
            with phases.phase("trainable import"):
                resolve_trainable(spec.trainable)
            with phases.phase("mlflow parent run"):
                sweep = SweepRun.start(spec, spec_path, tracking_uri)
        except BaseException:
            if started_ray:
                ray.shutdown()
            raise
        return sweep, started_ray

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="tuner-start") as pool:
        opening = pool.submit(
            _in_phase,
            phases,
            "mlflow parent run",
            SweepRun.start,
            spec,
            spec_path,
            tracking_uri,
        )
        importing = pool.submit(
            _in_phase, phases, "trainable import", resolve_trainable, spec.trainable
        )
        try:
            with phases.phase("ray start"):
                start_or_join(None, num_cpus, state_api=needs_state_api(spec))
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM while Ray started: the user's stop
            _end_opened(opening, RunStatus.KILLED, {})
            raise
        except BaseException as exc:
            reason = f"Ray did not start: {type(exc).__name__}: {exc}"
            _end_opened(opening, RunStatus.FAILED, {"tuner.error": reason[:5000]})
            raise
        try:
            importing.result()
            return opening.result(), True
        except BaseException:
            ray.shutdown()
            raise


def _in_phase(phases: Phases, name: str, action: Callable[..., T], *args: Any) -> T:
    with phases.phase(name):
        return action(*args)


def _end_opened(opening: Future[SweepRun], status: int, tags: dict[str, str]) -> None:
    """The parent run opened beside a Ray that did not start: it ends as the start did,
    KILLED for an interrupt (as the command says), FAILED with the reason otherwise."""
    try:
        sweep = opening.result()
    except Exception:
        return  # no run was made; the Ray error is the one to report
    sweep.finish(status, tags)
