"""What `tuner resume` trusts: a digest of the state files, kept apart from the storage.

Ray Tune's restore unpickles `tuner.pkl`, the searcher's state and the trials in the
experiment state, and tuner imports the trainable the stored `sweep.yaml` names: whoever
can write the storage could make `tuner resume` run code of theirs. So when a sweep
stops (finished, interrupted, failed) tuner records a SHA-256 of every file at the top
of its experiment folder in the sweep's MLflow run, another system with its own access
rules; `tuner resume` computes it again before Ray reads a byte and refuses state that
changed. A driver that died without stopping (killed, its node lost) recorded no digest
for its last state: that resume goes on, and says so.
"""

from __future__ import annotations

import hashlib

import pyarrow.fs

from tuner.engine.experiments import Experiment

TAG_STATE_DIGEST = "tuner.state_digest"
# Written by Ray to prove storage is writable, and the driver's lock (engine.driver_lock,
# made by the resume that checks the digest): empty, never read back.
_IGNORED = frozenset({".validate_storage_marker", "driver.lock"})


class StateChanged(RuntimeError):
    """The experiment's state is not what the sweep left: resume refuses it (exit 1)."""


def state_digest(experiment: Experiment) -> str:
    """`sha256:HEX` over the names and bytes of the experiment folder's top-level files."""
    filesystem = experiment.storage.filesystem or pyarrow.fs.LocalFileSystem()
    entries = filesystem.get_file_info(pyarrow.fs.FileSelector(experiment.path))
    names = sorted(
        entry.base_name
        for entry in entries
        if entry.type == pyarrow.fs.FileType.File and entry.base_name not in _IGNORED
    )
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0")
        with filesystem.open_input_stream(f"{experiment.path}/{name}") as stream:
            data = stream.read()
        digest.update(len(data).to_bytes(8, "big") + data)
    return f"sha256:{digest.hexdigest()}"


def check_state(experiment: Experiment, recorded: str | None) -> str | None:
    """Raise StateChanged when the state differs from the digest the sweep recorded;
    return a note for the user when there is none to compare with, else None."""
    if recorded is None:
        return (
            f"note: {experiment.uri}: the sweep's driver stopped without recording a digest "
            "of its state (killed or lost); resuming from the state as the storage holds it"
        )
    found = state_digest(experiment)
    if found != recorded:
        raise StateChanged(
            f"{experiment.uri}: the saved state changed after the sweep stopped (its digest "
            f"is {found[:19]}..., the sweep recorded {recorded[:19]}...); tuner will not load "
            "it: restore the storage, or start the sweep again with `tuner run`"
        )
    return None
