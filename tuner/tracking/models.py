"""Log the best trial's model, and for built-in trainers its test score, to MLflow.

Every trainable's checkpoint files are logged under `checkpoint/`. Built-in trainers
also log an MLflow model under `model/` (PyTorch, torch.export format), loadable with
`mlflow.pyfunc.load_model("runs:/<run_id>/model")` without tuner installed, and are
evaluated once on the test split that the search never saw.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlflow import MlflowClient

from tuner.trainer.registry import BUILTINS


def log_best_model(client: MlflowClient, run_id: str, trainable: str, checkpoint_dir: str) -> None:
    client.log_artifacts(run_id, checkpoint_dir, artifact_path="checkpoint")
    if trainable not in BUILTINS:
        return
    import mlflow.pytorch  # heavy: only when there is a model to save
    import torch

    from tuner.trainer.artifacts import export_model

    model, example = export_model(checkpoint_dir)
    with tempfile.TemporaryDirectory(prefix="tuner-model-") as directory:
        target = Path(directory) / "model"
        mlflow.pytorch.save_model(
            model,
            str(target),
            input_example=example,
            # Inferring requirements imports and probes the environment: slow, and the
            # exported graph needs only torch.
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        )
        client.log_artifacts(run_id, str(target), artifact_path="model")


def best_test_metrics(trainable: str, checkpoint_dir: str) -> dict[str, float]:
    """The best model's score on the test split (built-in trainers only; else empty)."""
    if trainable not in BUILTINS:
        return {}
    from tuner.trainer.artifacts import test_metrics

    return test_metrics(checkpoint_dir)
