"""A full disk: refused before anything starts when the storage has no room, and one
line (not a traceback) when it fills up while a sweep runs."""

from __future__ import annotations

import errno
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli
from tuner.cli.common import disk_full


@pytest.fixture
def full_tmpfs() -> Iterator[Path]:
    """A 1 MiB tmpfs, nearly full: a real full filesystem (needs root to mount)."""
    folder = Path(tempfile.mkdtemp(prefix="tuner-full-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'not root'})")
    try:
        (folder / "fill").write_bytes(b"\0" * (1024 * 1024 - 8192))
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
        shutil.rmtree(folder, ignore_errors=True)


def test_storage_without_room_is_refused_before_ray_starts(full_tmpfs: Path) -> None:
    sweep = REPO / "search_spaces" / "digits_mlp_grid.yaml"
    runs = full_tmpfs / "runs"
    done = run_cli("run", str(sweep), "--storage", str(runs), cwd=full_tmpfs, timeout=60)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: --storage: storage {runs}: ")
    assert "MiB free on its filesystem" in line and line.endswith("(ENOSPC)")
    assert not runs.exists()


def test_a_disk_filling_up_is_found_however_it_was_wrapped() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/data/tuner.pkl")
        except OSError as inner:
            raise RuntimeError("Ray Tune could not save the experiment") from inner
    except RuntimeError as outer:
        found = disk_full(outer)
    assert found is not None and found.filename == "/data/tuner.pkl"
    sqlite = Exception("(sqlite3.OperationalError) database or disk is full")
    assert disk_full(sqlite) is not None
    assert disk_full(ValueError("something else")) is None
