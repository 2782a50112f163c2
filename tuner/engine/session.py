"""Start an embedded Ray, or join a cluster, the way tuner needs it.

Knows the seams of joining: Ray rejects a client without its auth token, retries an
unreachable address for minutes, and prints console output that our progress table
replaces. Nothing here builds a Tuner.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray
from ray._private import ray_constants

from tuner.engine.lean_ray import lean_embedded_start
from tuner.engine.own_state_api import own_state_api
from tuner.engine.prestarted_workers import inherited_environment
from tuner.engine.signals import callers_sigterm_kept
from tuner.spec import SpecError, SweepSpec

REACHABLE_TIMEOUT_S = 5.0


class RayUnavailable(RuntimeError):
    """The Ray cluster named by --address cannot be joined (exit status 1)."""


def quiet_worker_logs() -> None:
    """Keep per-checkpoint INFO lines out of the user's terminal: a cluster job's
    workers run it as their setup hook, an embedded sweep's trials as they start."""
    for name in ("ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.WARNING)


class _NoIncompleteTrialsLine(logging.Filter):
    """Ray's "Trials did not complete: [...]": the summary counts failed trials already."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Trials did not complete")


class _NoMissingResultsLine(logging.Filter):
    """Ray's "Failed to fetch metrics" when the only trials without results are ones that
    never reported (never started, as after fail fast, or failed at once): expected, and
    told by their own lines. Any other failure to read results still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith("Failed to fetch metrics"):
            return True
        listed = [line for line in message.splitlines()[1:] if line.startswith("- ")]
        return not listed or not all("FileNotFoundError" in line for line in listed)


class _NoMissingResultFileLine(logging.Filter):
    """Ray's JSON logger warns "Remote file not found" when a trial starts from a
    checkpoint before its own result.json exists: a PBT trial given another trial's
    checkpoint, every time. Nothing is missing; the results go on being written."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Remote file not found")


class _NoSlowStepLine(logging.Filter):
    """Ray Tune's "The `...` operation took 0.8 s, which may be a performance bottleneck",
    logged for any step of its loop over 0.5 s once the driver is a minute old: the
    driver's own bookkeeping (scheduler, searcher, tuner's callbacks) on a busy machine,
    nothing the sweep's user can act on, and a line through the progress table. Ray's
    threshold is read when ray.tune is imported, before tuner can set it; a user who
    sets TUNE_WARN_THRESHOLD_S asked for the lines and gets them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "TUNE_WARN_THRESHOLD_S" in os.environ:
            return True
        return "which may be a performance bottleneck" not in record.getMessage()


class _NoAuthEnabledLine(logging.Filter):
    """Ray's note on each embedded start that token auth is on, with how to turn it off:
    auth stays on and the note is no news. Its warning that auth is *off* still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled")


def quiet_driver_output() -> None:
    """Our progress table replaces Ray's console output; Ray's own knobs turn it off."""
    # With the new output engine even verbose=0 prints a config box and TensorBoard hints.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # A failed trial is one line of the progress table (its error file keeps the whole
    # traceback); Ray would print ~40 lines of its own frames per failure.
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
    # On Ctrl-C Ray Tune's own advice is `Tuner.restore(path=..., trainable=...)`; tuner's
    # one line says `tuner resume SWEEP`. MLflow announces each new SQLite store's
    # migrations at INFO. Both are noise around the line that matters.
    logging.getLogger("ray.tune.tune").setLevel(logging.ERROR)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    # PBT logs each exploit and explore as a dozen INFO lines through the live table;
    # MLflow holds them (tuner.exploit, hp.<name>), and `tuner best` the schedule.
    for name in ("ray.tune.schedulers.pbt", "ray.tune.schedulers.pb2"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # A trial still failing when the sweep stops (fail fast, Ctrl-C) leaves an error no
    # one fetches; Ray prints its traceback as "Unhandled error". The driver runs only
    # Tune, which reports trial failures itself.
    os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
    for name, line_filter in (
        ("ray.tune.tune", _NoIncompleteTrialsLine),
        ("ray.tune.analysis.experiment_analysis", _NoMissingResultsLine),
        ("ray._private.authentication.authentication_token_setup", _NoAuthEnabledLine),
        ("ray.tune.logger.logger", _NoMissingResultFileLine),
        ("ray.tune.utils.util", _NoSlowStepLine),
    ):
        _add_filter(name, line_filter)


def _add_filter(logger_name: str, line_filter: type[logging.Filter]) -> None:
    ray_logger = logging.getLogger(logger_name)
    if not any(isinstance(f, line_filter) for f in ray_logger.filters):
        ray_logger.addFilter(line_filter())


def check_local_resources(spec: SweepSpec, num_cpus: int | None) -> None:
    """An embedded Ray would wait forever for a trial bigger than this machine: refuse it.

    A multi-worker trial needs all its workers at once (workers x each one's share); the
    Ray Train driver that coordinates them takes no CPU or GPU of its own."""
    cpus = num_cpus or os.cpu_count() or 1
    wanted = spec.resources_per_trial
    workers = wanted.workers
    each = f"{workers} workers x " if workers > 1 else ""
    what = "each trial asks for"
    gpus = wanted.gpu * workers
    if gpus > 0 and gpus > gpu_count():
        raise SpecError(
            None,
            "resources_per_trial.gpu",
            f"{what} {each}{wanted.gpu:g} GPU but this machine has {gpu_count()}; "
            "use gpu: 0 here, or run on a cluster with --address",
        )
    if wanted.cpu * workers > cpus:
        raise SpecError(
            None,
            "resources_per_trial.workers" if workers > 1 else "resources_per_trial.cpu",
            f"{what} {each}{wanted.cpu:g} CPUs but this machine has {cpus}",
        )


def gpu_count() -> int:
    """The GPUs this process may use. NVML answers in milliseconds; torch, the fallback
    where NVML does not, takes seconds to import (2.9 s on the H200 box), before Ray
    starts: asked only when a trial wants a GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            count = int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver, or no NVML: as torch sees it
        import torch

        return int(torch.cuda.device_count())
    return visible_gpus(os.environ.get("CUDA_VISIBLE_DEVICES"), count)


def visible_gpus(visible: str | None, count: int) -> int:
    """Of `count` GPUs, how many CUDA_VISIBLE_DEVICES lets CUDA see: its entries up to
    the first that names none (CUDA stops reading there: "0,-1,1" is one GPU)."""
    if visible is None:
        return count
    entries = 0
    for entry in visible.split(","):
        entry = entry.strip()
        if not entry or entry.startswith("-"):
            break
        entries += 1
    return min(entries, count)


def use_token_auth_if_available() -> None:
    """Token auth stays on: a client joining a cluster must opt in to send its token.

    Ray turns auth on by itself only for a cluster it starts; a client that holds the
    token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) is otherwise
    rejected as unauthenticated. Ray caches its config at import, so setting
    RAY_AUTH_MODE now would be too late: Ray's own helper sets it and refreshes.
    """
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # Ray before 2.59 has no token auth
        return
    # Ray's "Token authentication is enabled ... Set RAY_AUTH_MODE=disabled to opt out"
    # is a second line beside each of `tuner status/logs/stop`'s own (an error's too),
    # and its advice is the one a client must not take.
    _add_filter("ray._private.authentication.authentication_token_setup", _NoAuthEnabledLine)
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _check_reachable(address: str) -> None:
    """Fail in seconds when host:port does not answer; ray.init retries for minutes."""
    if "://" in address or address in ("auto", "local"):
        return  # ray:// clients and auto-detection have their own, quick, errors
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailable(f"--address {address!r}: expected HOST:PORT of the Ray head")
    try:
        with socket.create_connection((host, int(port)), timeout=REACHABLE_TIMEOUT_S):
            pass
    except OSError as exc:
        raise RayUnavailable(f"cannot reach the Ray cluster at {address}: {exc}") from None


# How many times Ray reads the session's name from a cluster's GCS when joining, 2 s
# apart. Ray's 20 retry a GCS that rejected our auth token as if it were still starting:
# a wrong token took 21 s to report. A healthy GCS answers at once, and _check_reachable
# has seen it listening, so 3 leave a cluster that is just starting 6 s.
JOIN_KV_RETRIES = 3


@contextmanager
def _few_connect_retries(*, joining: bool) -> Iterator[None]:
    # Ray reads the constant when it connects; it has no public setting for it.
    previous = getattr(ray_constants, "NUM_REDIS_GET_RETRIES", None)
    if not joining or previous is None:
        yield
        return
    ray_constants.NUM_REDIS_GET_RETRIES = JOIN_KV_RETRIES
    try:
        yield
    finally:
        ray_constants.NUM_REDIS_GET_RETRIES = previous


# Ray's switch between a cluster node, which listens on the machine's network address,
# and a single machine, whose node address is loopback: its GCS, raylet, agents, metrics
# endpoint and workers then listen on 127.0.0.1 only. Ray reads it at import (the
# driver's constant) and in every process it starts (the environment).
_CLUSTER_MODE_ENV = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR


@contextmanager
def _loopback_only(embedded: bool) -> Iterator[None]:
    """An embedded Ray serves this process alone: nothing of it listens beyond loopback.

    Ray has no bind-address setting; its single-machine mode is the one way to keep its
    gRPC servers, agents and metrics endpoint (which answers without auth) off the
    network. A joined cluster keeps its own addresses, and its token auth.
    """
    if not embedded:
        yield
        return
    previous_constant = ray_constants.ENABLE_RAY_CLUSTER
    previous_env = os.environ.get(_CLUSTER_MODE_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ[_CLUSTER_MODE_ENV] = "0"
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = previous_constant
        if previous_env is None:
            os.environ.pop(_CLUSTER_MODE_ENV, None)
        else:
            os.environ[_CLUSTER_MODE_ENV] = previous_env


def _job_runtime_env(pythonpath: str) -> dict[str, Any]:
    """A cluster's workers, on other machines, get the driver's import path from the job."""
    return {
        "env_vars": {"PYTHONPATH": pythonpath},
        "worker_process_setup_hook": "tuner.engine.session.quiet_worker_logs",
    }


def needs_state_api(spec: SweepSpec) -> bool:
    """Whether the sweep's trials run Ray Train, which asks Ray's State API (below)."""
    return spec.resources_per_trial.distributed


def start_or_join(address: str | None, num_cpus: int | None, *, state_api: bool = False) -> bool:
    """Start or join Ray unless the caller already did; return whether we started it.

    `state_api`: an embedded Ray serves Ray's State API (its dashboard, on loopback).
    Ray Train's run of a multi-worker trial asks it whether the run's controller lives
    (its detached PlacementGroupCleaner, which frees the workers' placement group when
    the controller dies unannounced); without it each ask waits out a 10 s timeout,
    and the run's end waits 12 s and prints a traceback. It costs about 3 s of start
    and 1 s of shutdown, so only sweeps with such trials pay it."""
    if ray.is_initialized():
        return False
    if address is not None:
        _check_reachable(address)
        use_token_auth_if_available()
    # User trainables are imported by name in the workers: give them the driver's cwd.
    pythonpath = os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH")) if p)
    try:
        with (
            _few_connect_retries(joining=address is not None),
            _loopback_only(embedded=address is None),
            own_state_api(embedded=address is None, dashboard=state_api) as dashboard_at,
            inherited_environment(pythonpath if address is None else None),
            lean_embedded_start(embedded=address is None, dashboard=state_api),
            callers_sigterm_kept(),
        ):
            ray.init(
                # "local" always starts a fresh embedded Ray: an exported RAY_ADDRESS (the
                # Jobs API URL of a cluster, say) must not be joined by accident.
                address=address or "local",
                num_cpus=None if address else num_cpus,
                include_dashboard=state_api if address is None else None,
                **dashboard_at,
                logging_level=logging.WARNING,
                runtime_env=None if address is None else _job_runtime_env(pythonpath),
            )
    except ConnectionError as exc:
        hint = ""
        if os.environ.get("RAY_AUTH_MODE") == "token":
            hint = " (is RAY_AUTH_TOKEN the cluster's token? it rejects any other)"
        raise RayUnavailable(f"cannot join the Ray cluster at {address}: {exc}{hint}") from None
    return True
