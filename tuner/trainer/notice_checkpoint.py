"""Mid-epoch checkpoints, kept beside Ray Tune's in the trial's storage folder.

A checkpoint taken on a spot notice is no Tune report: Tune counts each report as an
iteration, which ASHA's rungs, PBT's perturbation interval, `stop` and Optuna's pruner
all read, and it would be one without the sweep's metric. So it goes to the trial's own
folder in the sweep's storage (S3 on a cluster), named after the Tune checkpoint it
went on from. A restarted trial takes it when Tune restores that same checkpoint (a
PBT exploit restores another trial's, and a later Tune checkpoint supersedes it).
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import torch

from tuner.trainer.checkpoint import TrainerState, as_dict

FOLDER = "mid_epoch_checkpoint"
STATE = "state.pt"
MARKER = "went_on_from.json"  # written last: a state without it is incomplete


def _location() -> tuple[Any, str]:
    from ray.train._internal.session import get_session

    session = get_session()
    assert session is not None, "mid-epoch checkpoints are kept by Ray Tune trials only"
    storage = session.storage
    return storage.storage_filesystem, f"{storage.trial_fs_path}/{FOLDER}"


def save_mid_epoch(state: TrainerState, went_on_from: str | None) -> None:
    """Keep `state` in the trial's storage; `went_on_from`: the Tune checkpoint's id."""
    filesystem, folder = _location()
    buffer = io.BytesIO()
    torch.save(as_dict(state), buffer)
    filesystem.create_dir(folder, recursive=True)
    with contextlib.suppress(FileNotFoundError, OSError):
        filesystem.delete_file(f"{folder}/{MARKER}")  # the old state is being replaced
    with filesystem.open_output_stream(f"{folder}/{STATE}") as stream:
        stream.write(buffer.getvalue())
    marker = {"went_on_from": went_on_from, "epoch": state.epoch}
    with filesystem.open_output_stream(f"{folder}/{MARKER}") as stream:
        stream.write(json.dumps(marker).encode())


def load_mid_epoch(went_on_from: str | None) -> TrainerState | None:
    """The trial's mid-epoch state if it went on from the Tune checkpoint `went_on_from`
    (None: from no checkpoint), else None."""
    filesystem, folder = _location()
    try:
        with filesystem.open_input_stream(f"{folder}/{MARKER}") as stream:
            marker = json.loads(stream.read().decode())
        if marker.get("went_on_from") != went_on_from:
            return None
        with filesystem.open_input_stream(f"{folder}/{STATE}") as stream:
            raw = stream.read()
    except (FileNotFoundError, OSError, ValueError):
        return None
    # weights_only: a checkpoint is data, never code to execute.
    return TrainerState(**torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True))
