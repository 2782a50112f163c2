"""Where Ray Tune keeps experiment state and checkpoints: a local folder or an s3:// URI.

For S3-compatible stores with a custom endpoint Ray needs an explicit pyarrow
filesystem and a scheme-less path (and the same pair again to restore), so both are
built here, once, from the URI and `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs

from tuner.defaults import DEFAULT_STORAGE, s3_filesystem


@dataclass(frozen=True)
class Storage:
    uri: str  # what the user wrote, normalized: absolute path or s3://bucket/prefix
    path: str  # what Ray gets as storage_path
    filesystem: pyarrow.fs.FileSystem | None  # None: Ray picks the local filesystem

    @property
    def is_remote(self) -> bool:
        return self.filesystem is not None

    def uri_of(self, path: str) -> str:
        """User-facing location of a path Ray reports (scheme-less on S3)."""
        return f"s3://{path}" if self.is_remote else path


def resolve_storage(location: str | None) -> Storage:
    location = location or DEFAULT_STORAGE
    parsed = urlparse(location)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"storage {location!r}: an s3:// URI needs a bucket")
        path = f"{parsed.netloc}{parsed.path}".rstrip("/")
        return Storage(uri=f"s3://{path}", path=path, filesystem=s3_filesystem())
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"storage {location!r}: use a local path or an s3:// URI")
    local = Path(parsed.path if parsed.scheme == "file" else location).expanduser().resolve()
    return Storage(uri=str(local), path=str(local), filesystem=None)


# Below this, Ray's first experiment snapshot or a trial's first checkpoint fails
# mid-sweep: a small sweep's state and checkpoints take a few MiB, a model's more.
MIN_FREE_BYTES = 64 * 2**20


def check_writable(storage: Storage, *, reach: bool = True) -> None:
    """A local storage folder that cannot be written (read-only, full, not ours) is
    found before Ray starts, with the path and the reason, not as a traceback after.
    S3 too, where this process writes it (`reach`; `tuner submit`'s cluster does)."""
    if storage.is_remote:
        if reach:
            _check_bucket(storage)
        return
    # The folder, or the nearest one above it that exists: nothing is left behind.
    folder = Path(storage.path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tuner-write-check-") as probe:
            probe.write(b"ok")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, "?")
        raise ValueError(
            f"storage {storage.uri}: cannot write there: {exc.strerror} ({code})"
        ) from None
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        raise ValueError(
            f"storage {storage.uri}: {free / 2**20:.1f} MiB free on its filesystem; a sweep "
            f"needs {MIN_FREE_BYTES // 2**20} MiB at least for Ray's state and checkpoints "
            "(ENOSPC)"
        )


def _check_bucket(storage: Storage) -> None:
    """The sweep's folder made on S3, as the sweep would first: an endpoint that does not
    answer, a bucket that does not exist or a refused login is one line here, not
    pyarrow's traceback from the middle of the sweep's start."""
    assert storage.filesystem is not None
    bucket = storage.path.split("/", 1)[0]
    try:
        storage.filesystem.create_dir(storage.path, recursive=True)
    except OSError as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if problem.startswith(f"Bucket '{bucket}' not found"):
            problem = f"no bucket {bucket!r} there (tuner does not create buckets)"
        raise ValueError(f"storage {storage.uri}: cannot write there: {problem}") from None
