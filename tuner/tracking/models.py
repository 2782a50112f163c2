"""Log the best trial's model, and for built-in trainers its test score, to MLflow.

Every trainable's checkpoint files are logged under `checkpoint/`. Built-in trainers
also log an MLflow model (PyTorch, torch.export format), loadable without tuner
installed: as an MLflow 3 logged model (`models:/<model_id>`, listed in the
experiment's Models tab, linked to the best trial's run with its params and metrics)
and under the run's `model/` (`runs:/<run_id>/model`), and are evaluated once on the
test split that the search never saw. A classifier's model carries its class names
(`classes.json`, and `classes` in its MLmodel metadata): output i is the i-th label.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import LoggedModelOutput

from tuner.tracking.results import param_value
from tuner.tracking.tags import TAG_CLASSES
from tuner.trainer.registry import BUILTINS

logger = logging.getLogger(__name__)


def import_model_logging(trainable: str) -> None:
    """Start readying, in a thread, what logging a built-in trainer's model takes.

    The driver logs the best model after the last trial. Done then, the first export
    paid for MLflow's PyTorch flavor and torch.export's imports (1.1 s of the 2.6 s it
    took on the 2-core machine, and more where imports are slow), for the modules that
    torch.export imports on its first trace, and for MLflow's map of every installed
    package's modules, which it builds to check the model's requirements (0.6 s here,
    more on a machine with many packages). While the trials run the driver mostly waits,
    so this runs beside them instead."""
    global _readying
    if trainable in BUILTINS and _readying is None:
        _readying = threading.Thread(target=_ready_model_logging, name="tuner-ready", daemon=True)
        _readying.start()


_readying: threading.Thread | None = None


def _ready_model_logging() -> None:
    try:
        import mlflow.pytorch  # noqa: F401
        import torch
        import torch.export
        from mlflow.utils import requirements_utils

        # A throwaway export: its trace imports torch.export's tracing machinery.
        torch.export.export(torch.nn.Linear(1, 1), (torch.zeros(1, 1),))
        requirements_utils._init_modules_to_packages_map()  # cached for the process
    except Exception:  # the export does each again and says what is wrong
        logger.debug("could not ready the model's logging ahead", exc_info=True)


def _model_logging_ready() -> None:
    """Wait for the thread readying the export: two torch.export traces at once in one
    process are not safe, and the export would wait on its imports' locks anyway."""
    if _readying is not None:
        _readying.join()


def log_best_model(
    client: MlflowClient,
    run_id: str,
    trainable: str,
    checkpoint_dir: str,
    *,
    experiment_id: str,
    params: dict[str, Any],
) -> str | None:
    """Log the checkpoint, and a built-in trainer's model; the logged model's id."""
    client.log_artifacts(run_id, checkpoint_dir, artifact_path="checkpoint")
    if trainable not in BUILTINS:
        return None
    import mlflow.pytorch  # heavy: only when there is a model to save
    import torch

    from tuner.trainer.artifacts import export_model
    from tuner.trainer.classes import CLASSES_FILE, write_classes

    _model_logging_ready()
    exported = export_model(checkpoint_dir)
    with tempfile.TemporaryDirectory(prefix="tuner-model-") as directory:
        target = Path(directory) / "model"
        mlflow.pytorch.save_model(
            exported.model,
            str(target),
            input_example=exported.example,
            # Inferring requirements imports and probes the environment: slow, and the
            # exported graph needs only torch.
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            # A classifier's outputs are scores for classes 0..K-1; their label values go
            # with the model, in its MLmodel metadata and as classes.json beside it. The
            # model itself stays a plain PyTorch one returning scores: a pyfunc wrapper
            # that returned labels would need tuner's code to load, would hide the
            # scores a user ranks or thresholds, and `mlflow.pytorch.load_model` users
            # would get no labels anyway.
            metadata={"classes": exported.classes} if exported.classes else None,
        )
        if exported.classes:
            write_classes(target, exported.classes)
            client.set_tag(run_id, TAG_CLASSES, f"model/{CLASSES_FILE}")
        client.log_artifacts(run_id, str(target), artifact_path="model")
        logged = client.create_logged_model(
            experiment_id,
            # Not "model": MLflow would then answer `list_artifacts(run, "model")` from the
            # logged model, looked up through the process's global tracking URI rather
            # than the client's, and fail for a client on another store.
            name="best_model",
            source_run_id=run_id,
            params={name: param_value(value) for name, value in params.items()},
            model_type="pytorch",
        )
        client.log_model_artifacts(logged.model_id, str(target))
    client.finalize_logged_model(logged.model_id, "READY")
    # The run's Model column, and the model's own metrics, name each other.
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    return str(logged.model_id)


def best_test_metrics(trainable: str, checkpoint_dir: str) -> dict[str, float]:
    """The best model's score on the test split (built-in trainers only; else empty)."""
    if trainable not in BUILTINS:
        return {}
    from tuner.trainer.artifacts import test_metrics

    return test_metrics(checkpoint_dir)
