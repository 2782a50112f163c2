"""The data a built-in trainer's trials train on, as an MLflow dataset input: its name,
source, digest (of the arrays, so two sweeps on different data are told apart), schema
and split sizes. MLflow's UI shows it in the runs table's Dataset column."""

from __future__ import annotations

import json
import warnings
from pathlib import PurePath
from typing import TYPE_CHECKING

from tuner.trainer.data import DataSource, Splits

if TYPE_CHECKING:
    from mlflow.entities import DatasetInput

# An input's fields, as a CreateRun operation carries them (JSON for the journal).
DatasetFields = dict[str, str]


def dataset_fields(source: DataSource, splits: Splits) -> DatasetFields:
    import numpy as np
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.numpy_dataset import from_numpy

    features = np.concatenate([splits.train.features, splits.val.features, splits.test.features])
    labels = np.concatenate([splits.train.labels, splits.val.labels, splits.test.labels])
    if source.data_path is not None:
        name = PurePath(source.data_path).stem
        where: object = source.data_path
    elif source.dataset == "synthetic":
        name = f"synthetic-{source.synthetic_samples}x{source.synthetic_features}"
        where = CodeDatasetSource(
            {"dataset": "synthetic", "difficulty": str(source.synthetic_difficulty)}
        )
    else:
        name = source.dataset
        where = CodeDatasetSource({"dataset": f"scikit-learn {source.dataset}"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow warns about sources it resolves by guess
        dataset = from_numpy(features, targets=labels, source=where, name=name)  # type: ignore[arg-type]
        entity = dataset._to_mlflow_entity()
    profile = {
        **json.loads(entity.profile or "{}"),
        "splits": {
            "train": len(splits.train.labels),
            "val": len(splits.val.labels),
            "test": len(splits.test.labels),
        },
    }
    return {
        "name": entity.name,
        "digest": entity.digest,
        "source_type": entity.source_type,
        "source": entity.source,
        "schema": entity.schema or "",
        "profile": json.dumps(profile),
    }


def dataset_input(fields: DatasetFields) -> DatasetInput:
    """The MLflow entity `log_inputs` takes, with the context MLflow's UI shows."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    return DatasetInput(Dataset(**fields), tags=[InputTag("mlflow.data.context", "training")])
