"""gunicorn's configuration for the head node's `mlflow server`:

    mlflow server ... --gunicorn-opts "... --config python:tuner.cluster.mlflow_gunicorn"

gunicorn's master runs `on_starting` before it forks its workers, so every worker's
MLflow store takes tuner's fast path for a trial's writes (tuner.cluster.mlflow_fast_writes).
gunicorn reads only its own settings' names from this module.
"""

from __future__ import annotations

from typing import Any


def on_starting(server: Any) -> None:
    from tuner.cluster.mlflow_fast_writes import install

    if install():
        server.log.info("tuner: MLflow's trial writes on PostgreSQL take tuner's fast path")
