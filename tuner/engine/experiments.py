"""A sweep's Ray Tune experiments in storage: `STORAGE/SWEEP/run-YYYYmmdd-HHMMSS-mmmXXXX/`
(milliseconds and 4 random hex digits: two runs of one sweep started in the same second
each get their own folder, and the names still sort by start time).

Each experiment folder also holds the sweep file it ran (`sweep.yaml`), so that
`tuner resume SWEEP` needs only the storage location, not the user's original file.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import pyarrow.fs
import yaml

from tuner.engine.storage import Storage
from tuner.spec import SweepSpec, parse_spec

SPEC_FILE = "sweep.yaml"
RUN_PREFIX = "run-"
STATE_PREFIX = "experiment_state-"  # Ray Tune's snapshot of the trials
TUNER_FILE = "tuner.pkl"  # Ray Tune's Tuner, written as fit() starts


class NothingToResume(RuntimeError):
    """No restorable experiment of the sweep exists in the storage (exit status 1)."""


@dataclass(frozen=True)
class Experiment:
    storage: Storage
    sweep: str
    name: str  # run-YYYYmmdd-HHMMSS-mmmXXXX: sorts by start time

    @classmethod
    def new(cls, storage: Storage, sweep: str) -> Experiment:
        now = time.time()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
        millis = int(now * 1000) % 1000
        return cls(storage, sweep, f"{RUN_PREFIX}{stamp}-{millis:03d}{secrets.token_hex(2)}")

    @property
    def parent(self) -> str:
        """Ray's storage_path: the sweep's folder (scheme-less on S3)."""
        return f"{self.storage.path}/{self.sweep}"

    @property
    def path(self) -> str:
        return f"{self.parent}/{self.name}"

    @property
    def uri(self) -> str:
        """Where a user finds it: a local path or s3://bucket/..."""
        return self.storage.uri_of(self.path)

    def save_spec(self, spec: SweepSpec) -> None:
        text = spec.as_yaml()
        filesystem = _filesystem(self.storage)
        filesystem.create_dir(self.path, recursive=True)
        with filesystem.open_output_stream(f"{self.path}/{SPEC_FILE}") as out:
            out.write(text.encode())

    def resumable(self) -> bool:
        """Whether Ray Tune saved a state here that `tuner resume` can start from.

        Its `tuner.pkl` (all that Tuner.can_restore looks for) is not enough: Ray writes
        it before the trials start and their state (`experiment_state-*.json`) at its
        first snapshot. A sweep stopped between the two has nothing to resume, and
        restoring it ran the trials without their config. Read by listing the folder:
        a resume submitted to a cluster asks this where Ray is not needed.
        """
        try:
            entries = _filesystem(self.storage).get_file_info(pyarrow.fs.FileSelector(self.path))
        except Exception:  # storage gone: no advice to resume is better than a wrong one
            return False
        names = {entry.base_name for entry in entries}
        snapshots = (n for n in names if n.startswith(STATE_PREFIX) and n.endswith(".json"))
        return TUNER_FILE in names and any(snapshots)

    def check_resumable(self) -> None:
        """NothingToResume, saying why and what to do, unless `resumable()`."""
        if not self.resumable():
            raise NothingToResume(
                f"{self.uri}: Ray Tune saved no state of the trials to resume from (the sweep "
                f"stopped before they started, or its storage is gone); `tuner run` starts "
                f"the sweep again"
            )

    def load_spec(self) -> SweepSpec:
        location = f"{self.uri}/{SPEC_FILE}"
        try:
            with _filesystem(self.storage).open_input_stream(f"{self.path}/{SPEC_FILE}") as src:
                text = src.read().decode()
        except (FileNotFoundError, OSError) as exc:
            raise NothingToResume(f"{location}: cannot read the sweep file: {exc}") from None
        return parse_spec(yaml.safe_load(text), location)


def latest_experiment(storage: Storage, sweep: str) -> Experiment:
    """The sweep's most recent experiment in `storage` that Ray Tune saved trials in, or
    its most recent one if none did."""
    filesystem = _filesystem(storage)
    folder = f"{storage.path}/{sweep}"
    try:
        entries = filesystem.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True))
    except OSError as exc:
        raise NothingToResume(f"cannot list {storage.uri_of(folder)}: {exc}") from None
    names = sorted(
        entry.base_name
        for entry in entries
        if entry.type == pyarrow.fs.FileType.Directory and entry.base_name.startswith(RUN_PREFIX)
    )
    if not names:
        raise NothingToResume(f"no experiment of sweep {sweep!r} in {storage.uri_of(folder)}")
    experiments = [Experiment(storage, sweep, name) for name in reversed(names)]
    # A run stopped as it started (a `tuner run` by mistake, Ctrl-C at once) saved nothing
    # of its trials: the one before it holds the sweep's work. It was refused in favour of
    # the empty one, and `tuner run` advised, which loses that work.
    return next((each for each in experiments if each.resumable()), experiments[0])


def _filesystem(storage: Storage) -> pyarrow.fs.FileSystem:
    return storage.filesystem or pyarrow.fs.LocalFileSystem()
