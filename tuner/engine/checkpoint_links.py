"""Links in a checkpoint folder, never followed out of it.

Ray persists a reported checkpoint with pyarrow's `copy_files`, `Checkpoint.to_directory`
fetches one the same way, and MLflow's `log_artifacts` copies a folder: all three follow
every symlink. A link a trainable left in its checkpoint folder (`ln -s ~/.aws/credentials`,
a dataset folder) had its target copied into the sweep's storage, S3 on a cluster, and
from there into MLflow with the best trial's checkpoint: a secret leaked, or gigabytes
went up every epoch; a link to a folder above it copied the checkpoint into itself until
the paths grew too long.

What of a checkpoint folder is copied, then:
- its files and folders, as they are;
- a link to a file inside the folder, as that file: loading code may open it by that
  name, and its bytes are the checkpoint's own;
- not a link out of the folder, nor one that leads nowhere; not a link to a folder either
  (one inside holds nothing the checkpoint lacks under its own name, and may loop); not
  what is no file (a FIFO would block the copy for ever). The trial says so in one line.

Where Ray copies from: a function trainable's checkpoint is copied inside its `report`
call, from wherever the user wrote it, so Ray is handed a stand-in folder (`copied_from`)
and the user's folder stays as it was. A class Trainable writes into a folder Ray made
for that one save, and a multi-worker trial's Ray Train may copy a worker's folder after
`report` returns (`checkpoint_upload_mode=ASYNC`): those folders lose what is left out
(the links, never what they point to). The best trial's checkpoint is fetched for MLflow
through a stand-in too (`fetch`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from tuner.spec.errors import printable


@dataclass(frozen=True)
class LeftOut:
    """An entry of a checkpoint folder that is not copied, and why."""

    name: str  # its path inside the checkpoint folder, "/"-separated
    why: str  # "a link to /home/me/.aws/credentials, outside the checkpoint folder"

    def __str__(self) -> str:
        return f"{self.name} ({self.why})"


@dataclass
class Contents:
    """What of a checkpoint folder is copied."""

    files: dict[str, str] = field(default_factory=dict)  # name -> the file its bytes are
    folders: list[str] = field(default_factory=list)  # a folder before what it holds
    left_out: list[LeftOut] = field(default_factory=list)
    linked: bool = False  # a link to a file inside is among `files`

    @property
    def as_is(self) -> bool:
        """Whether a copy that follows links copies exactly this: no link, nothing left out."""
        return not self.linked and not self.left_out


def contents(folder: str) -> Contents:
    """What of `folder` is copied (see the module's rules). Reads names and links only,
    never a file's bytes: a pass over the folder costs what listing it costs."""
    root = os.path.realpath(folder)  # the folder itself may be reached through a link
    found = Contents()
    pending = [""]
    while pending:
        inside = pending.pop()
        with os.scandir(os.path.join(root, inside)) as entries:
            for entry in entries:
                name = f"{inside}/{entry.name}" if inside else entry.name
                if entry.is_symlink():
                    _link(root, name, entry.path, found)
                elif entry.is_dir(follow_symlinks=False):
                    found.folders.append(name)
                    pending.append(name)
                elif entry.is_file(follow_symlinks=False):
                    found.files[name] = entry.path
                else:
                    found.left_out.append(LeftOut(name, "not a file nor a folder"))
    found.folders.sort()  # "a" before "a/b"
    found.left_out.sort(key=lambda left: left.name)
    return found


def _link(root: str, name: str, path: str, found: Contents) -> None:
    target = os.path.realpath(path)  # every link on the way resolved; a loop stays as is
    if not os.path.exists(target):
        why = f"a link to {os.readlink(path)}, which leads nowhere"
    elif os.path.commonpath([root, target]) != root:
        why = f"a link to {target}, outside the checkpoint folder"
    elif os.path.isdir(target):
        why = "a link to a folder"
    elif not stat.S_ISREG(os.stat(target).st_mode):
        why = "a link to what is not a file"
    else:
        found.files[name] = target
        found.linked = True
        return
    found.left_out.append(LeftOut(name, why))


@contextlib.contextmanager
def copied_from(folder: str, found: Contents) -> Iterator[str]:
    """The folder a copy that follows links should read for `folder`: `folder` itself when
    it is copied as is, else a temporary stand-in, removed on exit, whose folders are
    `folder`'s and whose files are links to the files `found` copies (absolute, so a copy
    follows each to its bytes). Links, not copies: a checkpoint of gigabytes costs a
    listing, and the user's folder is left as it was."""
    if found.as_is:
        yield folder
        return
    stand_in = tempfile.mkdtemp(prefix="tuner-checkpoint-")
    try:
        for name in found.folders:
            os.mkdir(os.path.join(stand_in, name))
        for name, source in found.files.items():
            os.symlink(source, os.path.join(stand_in, name))
        yield stand_in
    finally:
        shutil.rmtree(stand_in, ignore_errors=True)  # removes the links, not their files


def remove_left_out(folder: str, found: Contents) -> None:
    """Remove from `folder` what is not copied: the links themselves (never what they
    point to) and what is no file. For a folder Ray copies after it is handed over: one
    Ray made for a class Trainable's save, or a Ray Train worker's."""
    for left in found.left_out:
        os.unlink(os.path.join(folder, left.name))


class Told:
    """The names trial `trial` was told are left out, so that a checkpoint reported every
    epoch with the same link is one line, not one per epoch. One per trial."""

    def __init__(self, trial: str) -> None:
        self.trial = trial
        self._names: set[str] = set()

    def tell(self, folder: str, left_out: list[LeftOut], note: str = "") -> None:
        new = [left for left in left_out if left.name not in self._names]
        if not new:
            return
        self._names.update(left.name for left in new)
        shown = ", ".join(str(left) for left in new)
        # On stderr, as the trial's other warnings: Ray forwards a worker's to the driver.
        print(
            printable(
                f"warning: trial {self.trial}: checkpoint {folder}: left out {shown}: "
                "a link is not followed out of a checkpoint folder, so neither the "
                f"sweep's storage nor MLflow gets what it points to{note}"
            ),
            file=sys.stderr,
            flush=True,
        )


def _local_folder(checkpoint: Any) -> str | None:
    """The local folder of a Ray Checkpoint, or None (on S3 there are no links)."""
    import pyarrow.fs

    if checkpoint is None or not isinstance(checkpoint.filesystem, pyarrow.fs.LocalFileSystem):
        return None
    return str(checkpoint.path) if os.path.isdir(checkpoint.path) else None  # else Ray says


@contextlib.contextmanager
def _handed(checkpoint: Any, told: Told) -> Iterator[Any]:
    """`checkpoint`, or a checkpoint of its stand-in folder while one is needed."""
    folder = _local_folder(checkpoint)
    if folder is None:
        yield checkpoint
        return
    found = contents(folder)
    told.tell(folder, found.left_out)
    with copied_from(folder, found) as source:
        if source == folder:
            yield checkpoint
        else:  # of the user's class (ray.tune or ray.train), as Ray itself makes one
            yield checkpoint.__class__(source, filesystem=checkpoint.filesystem)


Report = Callable[..., None]


def reporting(report: Report, trial: str) -> Report:
    """Trial `trial`'s `report(metrics, checkpoint=...)`, whose checkpoints Ray copies
    without a link out of them: Ray copies one inside `report`, so the stand-in lives
    that long. What a trial's checkpoints leave out is said once."""
    told = Told(trial)

    def report_contained(metrics: dict[str, Any], checkpoint: Any = None) -> None:
        with _handed(checkpoint, told) as handed:
            report(metrics, checkpoint=handed)

    return report_contained


def worker_reports_links_in(context: Any, trial: str) -> None:
    """Have a Ray Train worker's reports (`ray.train.report` ends in its train context's
    `report`) copy no link out of their checkpoints. Train may copy a checkpoint after
    `report` returns (`checkpoint_upload_mode=ASYNC`), when no stand-in would be left to
    copy: the user's folder loses what is left out instead, and the trial's line says so."""
    report = context.report
    told = Told(trial)

    def report_contained(
        metrics: dict[str, Any], checkpoint: Any = None, *more: Any, **named: Any
    ) -> Any:
        folder = _local_folder(checkpoint)
        if folder is not None:
            found = contents(folder)
            told.tell(folder, found.left_out, " (removed from the folder)")
            remove_left_out(folder, found)
        return report(metrics, checkpoint, *more, **named)

    context.report = report_contained  # on this Train run's context only


class SavesLinksIn:
    """A base for a class `tune.Trainable`, listed before the user's class: what its
    `save_checkpoint(folder)` leaves out is removed from `folder`, which Ray made for
    this one save and copies when it returns, and said once per trial."""

    __told: tuple[str, Told] | None = None  # (the trial's id, what it was told)

    def save_checkpoint(self, checkpoint_dir: str) -> Any:
        saved = cast(Any, super()).save_checkpoint(checkpoint_dir)
        found = contents(checkpoint_dir)
        if found.left_out:
            trial = str(cast(Any, self).trial_id)  # a reused worker runs many trials
            if self.__told is None or self.__told[0] != trial:
                self.__told = (trial, Told(trial))
            self.__told[1].tell(checkpoint_dir, found.left_out)
            remove_left_out(checkpoint_dir, found)
        return saved


def fetch(checkpoint: Any, directory: str, trial: str) -> None:
    """`checkpoint.to_directory(directory)` without following a link out of a local
    checkpoint's folder: the best trial's checkpoint, fetched from the sweep's storage to
    be logged to MLflow. Ray's copies into storage follow links, so a folder there holds
    none that tuner's reports made; this holds for one put there by other means too."""
    with _handed(checkpoint, Told(trial)) as handed:
        handed.to_directory(directory)
