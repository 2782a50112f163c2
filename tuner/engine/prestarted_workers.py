"""An embedded sweep's first trials on the worker processes Ray starts with it.

`ray.init` starts a Python worker per CPU before any job's runtime env is known, and
Ray hands those only to tasks and actors that ask for no runtime env. Ray Tune gives
every trial actor one (`{"env_vars": {"PL_DISABLE_FORK": "1", ...}}`, in
ray/tune/execution/class_cache.py), so each of a sweep's first trials waited for a new
worker process while the prestarted ones sat idle: 1.0 s against 0.33 s for an actor
here, and the CPU of the processes started twice.

An embedded Ray's processes inherit the environment it starts with. So the variables a
job or a trial actor would carry (the import path, Tune's) go into that environment
instead, and a trial actor asks in its runtime env only for those its workers did not
inherit (none, unless something changed them since): its workers are then the
prestarted ones. A joined cluster keeps Ray's way; its workers inherit nothing of ours.

Tried and left out: importing torch in those workers with tasks while the driver sets
up. Ray does not hand a worker that ran a task to an actor (after two tasks, an actor
got a new process here), so the trials started in new processes and the sweep slowed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray

# What Ray Tune puts in every trial actor's runtime env, whatever the environment says.
TUNE_ACTOR_ENV = {"PL_DISABLE_FORK": "1"}

# Ray Train's watcher for drains of its workers' nodes, an actor (a process) started
# with each multi-worker trial's run: an embedded Ray's one machine has no spot nodes
# to watch, and Ray logged an error line for each watcher it started ("has constructor
# arguments in the object store and max_restarts > 0"). A cluster keeps it.
EMBEDDED_ONLY_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}

# The environment this process's embedded Ray started with, which its workers inherit,
# and that Ray's session name; None when Ray was joined, or started by someone else.
_inherited: tuple[dict[str, str], str] | None = None


def _session_name() -> str | None:
    node = getattr(ray._private.worker, "_global_node", None)  # Ray keeps it private
    return getattr(node, "session_name", None)


@contextmanager
def inherited_environment(pythonpath: str | None) -> Iterator[None]:
    """Around an embedded `ray.init` (`pythonpath` given): the workers' import path and
    Tune's actor variables in the environment Ray starts with; this process's own
    environment is as it was afterwards."""
    global _inherited
    _inherited = None
    if pythonpath is None:
        yield
        return
    wanted = {"PYTHONPATH": pythonpath}
    defaults = TUNE_ACTOR_ENV | EMBEDDED_ONLY_ENV
    wanted |= {name: os.environ.get(name, value) for name, value in defaults.items()}
    previous = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        snapshot = dict(os.environ)
        yield
        session = _session_name()
        if session is not None:  # only once Ray started with it
            _inherited = (snapshot, session)
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def runtime_env_vars(wanted: dict[str, str], inherited: dict[str, str]) -> dict[str, str]:
    """The variables a trial actor must still be given: those its workers lack."""
    return {name: value for name, value in wanted.items() if inherited.get(name) != value}


@contextmanager
def trial_actors_on_prestarted_workers() -> Iterator[None]:
    """Within it, on this process's embedded Ray, Tune's trial actors ask for a runtime
    env only with what their workers did not inherit."""
    if _inherited is None or _inherited[1] != _session_name() or not ray.is_initialized():
        yield  # not the embedded Ray started with that environment
        return
    inherited = _inherited[0]
    from ray.tune.execution import class_cache

    cache_class = class_cache._ActorClassCache
    ray_get = cache_class.get

    def get(self: Any, trainable_cls: type) -> Any:
        if trainable_cls not in self._cache:
            # As Ray builds it (class_cache.py), then less what the workers have.
            wanted = dict(class_cache.DEFAULT_ENV_VARS)
            wanted |= {
                name: os.environ[name]
                for name in class_cache.ENV_VARS_TO_PROPAGATE
                if name in os.environ
            }
            missing = runtime_env_vars(wanted, inherited)
            self._cache[trainable_cls] = (
                ray.remote(runtime_env={"env_vars": missing})(trainable_cls)
                if missing
                else ray.remote(trainable_cls)
            )
        return self._cache[trainable_cls]

    setattr(cache_class, "get", get)  # noqa: B010 (a method: mypy refuses the assignment)
    try:
        yield
    finally:
        setattr(cache_class, "get", ray_get)  # noqa: B010
