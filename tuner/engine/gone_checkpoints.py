"""A resumed trial whose latest checkpoint is gone goes on from what is left.

A user frees disk, an S3 lifecycle rule expires old objects, a folder is copied without
its checkpoints: Ray Tune then fails that trial on resume ("Could not recover from
checkpoint as it does not exist on storage anymore"), and a sweep of them ends with
every unfinished trial failed. What a user expects of `tuner resume` is that the trial
goes on from the newest of its checkpoints still there, or from the start when none is,
and is told which.

Ray restores the trials as it builds its controller, before the first step starts any:
the first `on_step_begin` is the one moment a driver can change where they resume from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow.fs
from ray.tune import Callback


def checkpoint_is_there(checkpoint: Any) -> bool:
    """Whether a checkpoint's folder is on its storage with something in it: an emptied
    folder resumes no better than a deleted one."""
    filesystem: pyarrow.fs.FileSystem = checkpoint.filesystem
    selector = pyarrow.fs.FileSelector(checkpoint.path, allow_not_found=True)
    return bool(filesystem.get_file_info(selector))


def _folder_name(checkpoint: Any) -> str:
    return str(checkpoint.path).rstrip("/").rsplit("/", 1)[-1]


def fall_back(trial: Any) -> str | None:
    """Point a trial whose latest checkpoint is gone at its newest one still there, or
    at none (it starts again); what was done, for the user, or None when nothing was.

    The manager keeps the trial's checkpoints in the order they were saved (the sweep
    ranks none by score: tuner_factory's CheckpointConfig), the latest one apart."""
    manager = trial.run_metadata.checkpoint_manager
    latest = manager.latest_checkpoint_result
    if latest is None or checkpoint_is_there(latest.checkpoint):
        return None
    kept = [
        result
        for result in manager._checkpoint_results
        if result is not latest and checkpoint_is_there(result.checkpoint)
    ]
    manager._checkpoint_results = kept
    manager._latest_checkpoint_result = kept[-1] if kept else None
    trial.invalidate_json_state()  # the experiment's next snapshot says so too
    gone = f"trial {trial.trial_id}: its checkpoint {_folder_name(latest.checkpoint)} is gone"
    if not kept:
        return f"{gone}, and none before it is left; it starts again from the start"
    older = kept[-1]
    epoch = older.metrics.get("epoch", older.metrics.get("training_iteration"))
    where = f" (epoch {epoch})" if epoch is not None else ""
    return f"{gone}; it goes on from {_folder_name(older.checkpoint)}{where}"


class GoneCheckpoints(Callback):  # type: ignore[misc]
    """On a resume, before any trial starts: each unfinished trial whose checkpoint is
    gone falls back to an older one or to the start (fall_back), said in one line."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self._checked = False

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles callbacks with the experiment; a terminal's printer cannot travel.
        return {**self.__dict__, "_say": None}

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if self._checked:
            return
        self._checked = True
        for trial in trials:
            if trial.status == "TERMINATED":  # finished: never restored
                continue
            if (line := fall_back(trial)) is not None and self._say is not None:
                self._say(line)
