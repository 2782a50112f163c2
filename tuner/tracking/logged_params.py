"""A sweep's params as its trials had them, read back from MLflow, which keeps every
param as a string: the sweep file its run keeps says which are numbers."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import yaml
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR

from tuner.search.distributions import optuna_space
from tuner.spec import SweepSpec, parse_spec


class SweepNotFound(LookupError):
    pass


def sweep_file(client: MlflowClient, parent: Run) -> SweepSpec:
    """The sweep file as the sweep ran it: its parent run keeps a copy."""
    os.environ.setdefault(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name, "false")  # one file
    with tempfile.TemporaryDirectory(prefix="tuner-report-") as folder:
        try:
            local = client.download_artifacts(parent.info.run_id, "spec", folder)
        except Exception as exc:  # MLflow raises its own and OSError kinds
            raise SweepNotFound(
                f"sweep run {parent.info.run_id} has no sweep file (spec/): {exc}"
            ) from None
        files = sorted(Path(local).glob("*.y*ml"))
        if not files:
            raise SweepNotFound(f"sweep run {parent.info.run_id} has no sweep file (spec/)")
        return parse_spec(yaml.safe_load(files[0].read_text()), files[0].name)


def typed(logged: str, distribution: optuna.distributions.BaseDistribution) -> Any:
    """A param as the trial had it: MLflow keeps strings (floats as their repr)."""
    if isinstance(distribution, optuna.distributions.FloatDistribution):
        return float(logged)
    if isinstance(distribution, optuna.distributions.IntDistribution):
        return int(float(logged))
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        for choice in distribution.choices:
            if logged in (str(choice), repr(choice)):
                return choice
    raise ValueError(f"{logged!r} is not a value of {distribution}")


def typed_params(client: MlflowClient, parent: Run) -> Callable[[dict[str, str]], dict[str, Any]]:
    """A function that types a trial run's params by the sweep's file; one that keeps
    them as logged where the file cannot be read (a run made by hand)."""
    try:
        space = optuna_space(sweep_file(client, parent))
    except SweepNotFound:
        space = {}

    def of(params: dict[str, str]) -> dict[str, Any]:
        return {name: _typed_or_logged(value, space.get(name)) for name, value in params.items()}

    return of


def _typed_or_logged(
    logged: str, distribution: optuna.distributions.BaseDistribution | None
) -> Any:
    """Not a searched param (a run made by hand), or a value outside the space: as logged."""
    if distribution is None:
        return logged
    try:
        return typed(logged, distribution)
    except ValueError:
        return logged
