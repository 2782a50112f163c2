"""The sweep's best model in MLflow's Model Registry (`register: NAME`): a new version
each sweep, and the alias `@best` on the best version registered so far. A sweep that
beats the version `@best` names moves the alias; one that does not leaves it."""

from __future__ import annotations

import math

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

ALIAS = "best"
TAG_METRIC = "tuner.metric"
TAG_MODE = "tuner.mode"
TAG_VALUE = "tuner.value"


def _missing(exc: MlflowException) -> bool:
    return bool(exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST))


def register_best(
    client: MlflowClient,
    name: str,
    model_id: str,
    run_id: str,
    *,
    metric: str,
    mode: str,
    value: float,
) -> str:
    """Register the model as a version of `name`; one line saying where `@best` is."""
    try:
        aliases = dict(client.get_registered_model(name).aliases or {})
    except MlflowException as exc:
        if not _missing(exc):
            raise
        client.create_registered_model(name)
        aliases = {}
    # The artifacts' own location: a models:/ source would be resolved through the
    # process's global tracking URI, not this client's.
    location = client.get_logged_model(model_id).artifact_location
    version = client.create_model_version(
        name,
        source=location,
        run_id=run_id,
        model_id=model_id,
        tags={TAG_METRIC: metric, TAG_MODE: mode, TAG_VALUE: repr(value)},
    ).version
    current = client.get_model_version(name, aliases[ALIAS]) if ALIAS in aliases else None
    said = f"registered model {name!r} version {version}"
    if current is not None:
        theirs = current.tags or {}
        if (theirs.get(TAG_METRIC), theirs.get(TAG_MODE)) != (metric, mode):
            return (
                f"{said}; @{ALIAS} stays on version {current.version}, which was not "
                f"judged on {metric} ({mode})"
            )
        best = float(theirs.get(TAG_VALUE, "nan"))
        beaten = value > best if mode == "max" else value < best
        if not beaten and not math.isnan(best):
            return (
                f"{said}; @{ALIAS} stays on version {current.version} "
                f"({metric} {best:.6g}, this sweep {value:.6g})"
            )
    client.set_registered_model_alias(name, ALIAS, str(version))
    return f"{said}, now @{ALIAS} ({metric} {value:.6g})"
