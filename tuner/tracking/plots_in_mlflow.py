"""The sweep's report in its own MLflow run: the plots and report.html under `plots/`,
so that a user browsing MLflow sees the pictures without running anything.

Drawing takes seconds (the importances fit a forest, matplotlib renders five figures):
at the end of a short laptop sweep that would be a fifth of its wall time, so a sweep
draws them when it ends only when its trials ran for `AT_END_AFTER_FIT_S` or more, and
`tuner report NAME --log` draws them for any sweep, a running one included.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

PLOTS_ARTIFACT = "plots"
# Sweeps whose fit took this long draw their plots when they end (a few seconds more).
AT_END_AFTER_FIT_S = 60.0


def seconds_setting(name: str, default: float) -> float:
    """A number of seconds from the environment variable `name`; `default` if unset or
    not a number."""
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def log_plots(client: MlflowClient, experiment_id: str, parent_run_id: str) -> tuple[int, str]:
    """Draw the sweep's report and log it to its parent run; (plots drawn, where)."""
    # Imported here: a sweep's driver imports this module for its settings, and the
    # report's modules bring scikit-learn (Optuna's fANOVA), a second of its start.
    from tuner.tracking.report import write_report
    from tuner.tracking.study import sweep_of_run

    parent = client.get_run(parent_run_id)
    sweep = sweep_of_run(client, experiment_id, parent)
    with tempfile.TemporaryDirectory(prefix="tuner-plots-") as folder:
        report = write_report(sweep, Path(folder))
        client.log_artifacts(parent_run_id, folder, PLOTS_ARTIFACT)
    where = f"{parent.info.artifact_uri}/{PLOTS_ARTIFACT}/report.html"
    return len(report.plots), where
