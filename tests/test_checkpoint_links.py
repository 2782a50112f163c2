"""Links in a checkpoint folder are never followed out of it (tuner.engine.checkpoint_links),
checked on real folders with the copies Ray and tuner make of them (pyarrow's copy_files,
`Checkpoint.to_directory`, a class Trainable's `save()`), without a sweep: the sweep
through the `tuner` command is tests/test_checkpoint_links_sweep.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow.fs
import pytest
from ray import tune

from tuner.engine.checkpoint_links import (
    LeftOut,
    Told,
    contents,
    copied_from,
    fetch,
    remove_left_out,
    reporting,
    worker_reports_links_in,
)
from tuner.engine.user_code import user_class

SECRET = "aws_secret_access_key = not-for-storage"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A user's home beside the checkpoint: a credentials file and a data folder."""
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    (home / "credentials").write_text(SECRET)
    (home / "data" / "train.csv").write_text(SECRET)
    return home


def linked_checkpoint(folder: Path, outside: Path) -> Path:
    """A checkpoint folder with every kind of entry a copy may meet."""
    (folder / "state").mkdir(parents=True)
    (folder / "weights.pt").write_text("weights")
    (folder / "state" / "optimizer.pt").write_text("moments")
    (folder / "empty").mkdir()
    os.symlink("weights.pt", folder / "latest.pt")  # inside: copied as the file
    os.symlink("../weights.pt", folder / "state" / "model.pt")  # inside, from below
    os.symlink(outside / "credentials", folder / "credentials")
    os.symlink(outside / "data", folder / "data")
    os.symlink("state", folder / "newest")  # a folder inside
    os.symlink("..", folder / "state" / "loop")  # a folder above: copies would loop
    os.symlink(folder / "gone.pt", folder / "dangling")
    os.symlink("itself", folder / "itself")
    os.mkfifo(folder / "pipe")  # a copy would wait on it for ever
    return folder


def test_what_of_a_checkpoint_folder_is_copied(tmp_path: Path, outside: Path) -> None:
    folder = linked_checkpoint(tmp_path / "checkpoint", outside)
    found = contents(str(folder))
    real = os.path.realpath(folder)
    assert found.files == {
        "weights.pt": f"{real}/weights.pt",
        "latest.pt": f"{real}/weights.pt",
        "state/optimizer.pt": f"{real}/state/optimizer.pt",
        "state/model.pt": f"{real}/weights.pt",
    }
    assert found.folders == ["empty", "state"]
    assert found.left_out == [
        LeftOut("credentials", f"a link to {outside}/credentials, outside the checkpoint folder"),
        LeftOut("dangling", f"a link to {folder}/gone.pt, which leads nowhere"),
        LeftOut("data", f"a link to {outside}/data, outside the checkpoint folder"),
        LeftOut("itself", "a link to itself, which leads nowhere"),
        LeftOut("newest", "a link to a folder"),
        LeftOut("pipe", "not a file nor a folder"),
        LeftOut("state/loop", "a link to a folder"),
    ]
    assert found.linked and not found.as_is


def test_ray_copies_the_stand_in_without_a_byte_from_outside(tmp_path: Path, outside: Path) -> None:
    folder = linked_checkpoint(tmp_path / "checkpoint", outside)
    before = sorted(os.listdir(folder))
    found = contents(str(folder))
    with copied_from(str(folder), found) as stand_in:
        assert stand_in != str(folder)
        # As Ray persists a reported checkpoint (ray.train._internal.storage).
        pyarrow.fs.copy_files(stand_in, str(tmp_path / "storage"))
    assert not Path(stand_in).exists()  # gone, and what its links pointed to stays
    assert sorted(os.listdir(folder)) == before  # the user's folder is as it was
    copied = tmp_path / "storage"
    assert sorted(str(p.relative_to(copied)) for p in copied.rglob("*")) == [
        "empty", "latest.pt", "state", "state/model.pt", "state/optimizer.pt", "weights.pt"
    ]  # fmt: skip
    assert not any(p.is_symlink() for p in copied.rglob("*"))
    assert (copied / "latest.pt").read_text() == "weights"
    assert (copied / "state" / "model.pt").read_text() == "weights"
    assert all(SECRET not in p.read_text() for p in copied.rglob("*") if p.is_file())
    assert (outside / "credentials").read_text() == SECRET


def test_a_folder_without_links_is_copied_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "weights.pt").write_text("weights")
    found = contents(str(tmp_path))
    assert found.as_is and found.left_out == []
    with copied_from(str(tmp_path), found) as source:
        assert source == str(tmp_path)  # no stand-in: a report costs a listing


def test_a_trial_hands_ray_a_stand_in_and_says_what_it_left_out_once(
    tmp_path: Path, outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handed: list[tuple[Any, list[str]]] = []

    def report(metrics: dict[str, Any], checkpoint: Any = None) -> None:
        # What Ray copies is read during its report: the stand-in exists then.
        names = sorted(os.listdir(checkpoint.path)) if checkpoint is not None else []
        handed.append((checkpoint, names))

    contained = reporting(report, "f00d_00001")
    checkpoints = []
    for epoch in range(3):  # a new folder each epoch, with the same links
        folder = tmp_path / f"epoch_{epoch}"
        folder.mkdir()
        (folder / "weights.pt").write_text("weights")
        os.symlink(outside / "credentials", folder / "credentials")
        checkpoints.append(tune.Checkpoint.from_directory(folder))
        contained({"loss": 1.0}, checkpoint=checkpoints[-1])
    contained({"loss": 0.5})  # a report without a checkpoint goes on as it was
    for (checkpoint, names), given in zip(handed[:3], checkpoints, strict=True):
        assert isinstance(checkpoint, tune.Checkpoint) and checkpoint.path != given.path
        assert names == ["weights.pt"] and not Path(checkpoint.path).exists()
    assert handed[3] == (None, [])
    told = capsys.readouterr().err.splitlines()
    assert told == [
        f"warning: trial f00d_00001: checkpoint {tmp_path}/epoch_0: left out credentials "
        f"(a link to {outside}/credentials, outside the checkpoint folder): a link is not "
        "followed out of a checkpoint folder, so neither the sweep's storage nor MLflow "
        "gets what it points to"
    ]


def test_the_line_escapes_what_a_name_holds(capsys: pytest.CaptureFixture[str]) -> None:
    told = Told("t")
    told.tell("/tmp/c", [LeftOut("\x1b]0;owned\x07", "a link to a folder")])
    assert "\\x1b]0;owned\\x07 (a link to a folder)" in capsys.readouterr().err


class Saves(tune.Trainable):
    """A class Trainable whose checkpoint folder links to a secret."""

    def setup(self, config: dict[str, Any]) -> None:
        self.credentials = config["credentials"]

    def step(self) -> dict[str, float]:
        return {"loss": 1.0}

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        Path(checkpoint_dir, "weights.pt").write_text("weights")
        os.symlink("weights.pt", os.path.join(checkpoint_dir, "latest.pt"))
        os.symlink(self.credentials, os.path.join(checkpoint_dir, "credentials"))


def test_a_class_trainables_checkpoint_loses_its_links_out_only(
    outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trainable = user_class(Saves, "loss")(config={"credentials": str(outside / "credentials")})
    folders: list[Path] = []
    try:
        # Without a sweep Ray leaves the folder it made for save_checkpoint in place.
        for _ in range(2):
            folders.append(Path(trainable.save().checkpoint.path))
        check_saved(folders, outside, capsys.readouterr().err)
    finally:
        trainable.stop()
        for folder in folders:
            shutil.rmtree(folder)


def check_saved(folders: list[Path], outside: Path, err: str) -> None:
    for folder in folders:
        assert sorted(os.listdir(folder)) == ["latest.pt", "weights.pt"]
        assert (folder / "latest.pt").is_symlink()  # inside: Ray copies it as the file
    assert (outside / "credentials").read_text() == SECRET  # only the link went
    told = [line for line in err.splitlines() if "left out" in line]
    assert len(told) == 1 and "left out credentials (a link to " in told[0]
    assert told[0].startswith(f"warning: trial default: checkpoint {folders[0]}: ")


def test_the_best_checkpoint_is_fetched_without_following_a_link_out(
    tmp_path: Path, outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint in a local storage folder that holds links, put there by other means
    than a report: the fetch before MLflow's logging does not follow them."""
    stored = linked_checkpoint(tmp_path / "runs" / "checkpoint_000002", outside)
    (stored / "pipe").unlink()  # a FIFO would not reach storage
    fetched = tmp_path / "fetched"
    fetch(tune.Checkpoint.from_directory(stored), str(fetched), "f00d_00000")
    names = sorted(str(p.relative_to(fetched)) for p in fetched.rglob("*"))
    assert names == [
        "empty", "latest.pt", "state", "state/model.pt", "state/optimizer.pt", "weights.pt"
    ]  # fmt: skip
    assert all(SECRET not in p.read_text() for p in fetched.rglob("*") if p.is_file())
    assert "warning: trial f00d_00000: checkpoint " in capsys.readouterr().err


def test_remove_left_out_unlinks_only_the_links(tmp_path: Path, outside: Path) -> None:
    folder = linked_checkpoint(tmp_path / "checkpoint", outside)
    remove_left_out(str(folder), contents(str(folder)))
    assert sorted(os.listdir(folder)) == ["empty", "latest.pt", "state", "weights.pt"]
    assert sorted(os.listdir(folder / "state")) == ["model.pt", "optimizer.pt"]
    assert sorted(os.listdir(outside)) == ["credentials", "data"]
    assert contents(str(folder)).left_out == []


class TrainContext:
    """Stands where a Ray Train worker's context is: `ray.train.report` ends in its
    `report`, called with every argument in place (Ray's DistributedTrainFnUtils)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def report(self, *args: Any) -> None:
        checkpoint = args[1]
        names = sorted(os.listdir(checkpoint.path)) if checkpoint is not None else []
        self.calls.append((*args, names))


def test_a_workers_checkpoint_folder_loses_its_links_out_before_train_copies_it(
    tmp_path: Path, outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context = TrainContext()
    worker_reports_links_in(context, "f00d_00002")
    folder = tmp_path / "rank_0"
    folder.mkdir()
    (folder / "state.pt").write_text("weights")
    os.symlink("state.pt", folder / "latest.pt")
    os.symlink(outside / "credentials", folder / "credentials")
    checkpoint = tune.Checkpoint.from_directory(folder)
    context.report({"loss": 1.0}, checkpoint, None, "ASYNC", True, None, False)
    context.report({"loss": 0.5}, None, None, "SYNC", False, None, False)
    assert context.calls == [
        ({"loss": 1.0}, checkpoint, None, "ASYNC", True, None, False, ["latest.pt", "state.pt"]),
        ({"loss": 0.5}, None, None, "SYNC", False, None, False, []),
    ]
    assert (outside / "credentials").read_text() == SECRET
    [told] = capsys.readouterr().err.splitlines()
    assert told.startswith(f"warning: trial f00d_00002: checkpoint {folder}: left out credentials")
    assert told.endswith("gets what it points to (removed from the folder)")
