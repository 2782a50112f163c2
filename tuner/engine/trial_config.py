"""The config a trial's code receives: Ray's stored config with the secrets put back.

Ray writes a trial's config into its storage (params.json, result.json, the experiment
state) and MLflow gets it too, so those hold the sweep with its secrets withheld
(`tuner.spec.secrets`). In the trial's process, and only there, the withheld entries
come back from Ray's object store (memory, never the storage) and each `${env:NAME}`
is read from that process's environment: on a cluster, the node's.

Ray Tune also copies the driver's AWS credentials into every trial actor's runtime env,
which Ray writes to a log under its temp folder. tuner turns that off: embedded workers
inherit the driver's environment anyway, and a cluster's nodes have their instance role.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import ray

from tuner.engine.hidden_output import hide_in_output
from tuner.spec.secrets import MissingEnvironment, env_names, resolved

_AWS_CREDENTIALS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SECURITY_TOKEN",
    "AWS_SESSION_TOKEN",
)


class TrialConfigError(RuntimeError):
    """A trial cannot build its config (an unset `${env:NAME}`): the trial fails with
    this one line."""


class TrialConfig:
    """Turns Ray's stored config into the one the trainable receives (picklable: it
    travels with the trainable to the workers, holding only an object reference)."""

    def __init__(self, withheld: dict[str, Any], uses_env: bool) -> None:
        self._withheld = ray.put(withheld) if withheld else None
        self._uses_env = uses_env

    @classmethod
    def needed(cls, config: dict[str, Any], withheld: dict[str, Any]) -> TrialConfig | None:
        """A TrialConfig when the sweep has secrets or `${env:NAME}` values, else None
        (the trainable then gets Ray's config as it is, at no cost)."""
        uses_env = any(True for _ in env_names({**config, **withheld}))
        if not withheld and not uses_env:
            return None
        return cls(withheld, uses_env)

    def secrets(self, config: dict[str, Any]) -> list[str]:
        """The secret values this process puts into `config` (Ray's stored one): the
        withheld ones and each `${env:NAME}`'s value, longest first, so that an error
        message quoting one can have it taken out before it is stored anywhere. From
        now on this process's output has them taken out too (hidden_output)."""
        values: set[str] = set()
        withheld: dict[str, Any] = {}
        if self._withheld is not None:
            withheld = ray.get(self._withheld)
            values.update(_strings(withheld))
        if self._uses_env:
            # A withheld value may hold references too (`abc${env:PW}`): PW is a secret.
            names = env_names({**config, **withheld})
            values.update(os.environ.get(name, "") for name in names)
        # A value of a few characters would take out ordinary words and numbers.
        secrets = sorted((v for v in values if len(v) >= 4), key=len, reverse=True)
        hide_in_output(secrets)
        return secrets

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        full = dict(config)
        if self._withheld is not None:
            withheld: dict[str, Any] = ray.get(self._withheld)
            full.update(withheld)
        if not self._uses_env:
            return full
        try:
            return resolved(full)  # type: ignore[no-any-return]
        except MissingEnvironment as exc:
            raise TrialConfigError(f"{exc} on node {socket.gethostname()}") from None


def no_credentials_in_runtime_env() -> None:
    """Stop Ray Tune from putting the driver's AWS credentials in trial actors'
    runtime envs (and so in Ray's logs)."""
    try:
        from ray.tune.execution import class_cache
    except ImportError:  # another Ray layout: nothing of this kind to turn off
        return
    for name in _AWS_CREDENTIALS:
        class_cache.ENV_VARS_TO_PROPAGATE.discard(name)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        yield str(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
