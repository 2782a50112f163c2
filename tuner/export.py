"""Log the best trial's model to its MLflow run.

Every trainable's checkpoint files are logged under `checkpoint/`. Built-in trainers
also log an MLflow model under `model/` (PyTorch, torch.export format), loadable with
`mlflow.pyfunc.load_model("runs:/<run_id>/model")` without tuner installed.
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

# name -> "module:function" returning (torch module in eval mode, input example array)
MODEL_EXPORTERS: dict[str, str] = {
    "builtin:classifier": "tuner.trainer.classifier:export_model",
}


def _exporter(trainable: str) -> Callable[[str], tuple[Any, Any]] | None:
    target = MODEL_EXPORTERS.get(trainable)
    if target is None:
        return None
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def log_best_model(client: MlflowClient, run_id: str, trainable: str, checkpoint_dir: str) -> None:
    client.log_artifacts(run_id, checkpoint_dir, artifact_path="checkpoint")
    exporter = _exporter(trainable)
    if exporter is None:
        return
    import mlflow.pytorch  # heavy: only when there is a model to save
    import torch

    model, example = exporter(checkpoint_dir)
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
