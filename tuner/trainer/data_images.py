"""Image folders as the built-in classifier's data: one sub-folder per class of PNG or JPEG
files, local or under an s3:// prefix, read with Pillow and resized to `image_size`.

No torch, so `tuner validate` reads and checks the whole folder before any trial starts:
a file Pillow cannot decode fails there, named, not in every trial.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from tuner.trainer.data_files import MAX_FEATURE_BYTES, Arrays, DataError, s3_filesystem

if TYPE_CHECKING:
    import pyarrow.fs
    from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Pillow modes whose pixels are one grey value; everything else is read as RGB.
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L"})

KEY = "config.data_path"


def is_folder(location: str) -> bool:
    """A data_path that names a folder of images: ends with / (local or s3://), or is a
    local directory. An s3:// prefix needs the slash: S3 has no directories to look up."""
    if location.endswith("/"):
        return True
    return "://" not in location and os.path.isdir(os.path.expanduser(location))


def read_folder(location: str, side: int) -> Arrays:
    """Every image under `location`, labelled by its class sub-folder's name, as float32
    (N, C, side, side) in [0, 1]: C is 1 when every image is grey, else 3 (RGB)."""
    filesystem, root = _filesystem(location)
    samples = _list_samples(filesystem, root, location)
    _check_size(location, len(samples), 1, side)
    pixels: list[np.ndarray] = []
    colour = False
    for path, _ in samples:
        image = _decode(filesystem, path, location, root)
        if image.mode not in GREY_MODES and not colour:
            colour = True
            _check_size(location, len(samples), 3, side)
        # Squashed to a square, as the CNN reads it: no crop silently drops an object.
        resized = _eight_bit(image).resize((side, side))
        pixels.append(np.asarray(resized, dtype=np.uint8))
    features = np.stack([_channels_first(p, colour) for p in pixels]).astype(np.float32)
    features /= 255.0
    return Arrays(features, np.array([label for _, label in samples]))


def _eight_bit(image: Image.Image) -> Image.Image:
    """The image as "L" or "RGB". A 16-bit grey PNG opens as "I;16" (or "I"), which
    Pillow's convert clips at 255, not scales: all but its darkest pixels would be white."""
    from PIL import Image

    if image.mode.startswith("I"):
        wide = np.clip(np.asarray(image, dtype=np.int64), 0, 2**16 - 1)
        return Image.fromarray((wide >> 8).astype(np.uint8))  # 2-D uint8: "L"
    return image.convert("L" if image.mode in GREY_MODES else "RGB")


def _channels_first(pixels: np.ndarray, colour: bool) -> np.ndarray:
    if pixels.ndim == 2:  # grey: one channel, or the same value in each of R, G and B
        pixels = pixels[:, :, None].repeat(3 if colour else 1, axis=2)
    return pixels.transpose(2, 0, 1)


def _filesystem(location: str) -> tuple[pyarrow.fs.FileSystem, str]:
    import pyarrow.fs

    if location.startswith("s3://"):
        return s3_filesystem(), location.removeprefix("s3://").rstrip("/")
    root = os.path.abspath(os.path.expanduser(location))
    return pyarrow.fs.LocalFileSystem(), root


def _list_samples(
    filesystem: pyarrow.fs.FileSystem, root: str, location: str
) -> list[tuple[str, str]]:
    """(path, class) of every image, sorted by class then path: the same order each time."""
    import pyarrow.fs

    selector = pyarrow.fs.FileSelector(root, recursive=True)
    try:
        entries = filesystem.get_file_info(selector)
    except FileNotFoundError:
        raise DataError(KEY, f"{location}: folder not found") from None
    except OSError as exc:  # not a directory, no access, S3 unreachable
        raise DataError(KEY, f"cannot list {location}: {exc}") from None
    classes: dict[str, list[str]] = {}
    for entry, parts in _visible(entries, root):
        if len(parts) == 1 and entry.type == pyarrow.fs.FileType.Directory:
            classes.setdefault(parts[0], [])
        elif len(parts) > 1 and entry.type == pyarrow.fs.FileType.File:
            images = classes.setdefault(parts[0], [])
            if parts[-1].lower().endswith(IMAGE_SUFFIXES):
                images.append(entry.path)
    if not classes:
        raise DataError(
            KEY, f"{location}: no class sub-folders; put each class's images in a folder of its own"
        )
    empty = sorted(name for name, images in classes.items() if not images)
    if empty:
        raise DataError(
            KEY,
            f"{location}: no {', '.join(IMAGE_SUFFIXES)} images in class folder "
            + ", ".join(repr(name) for name in empty[:5]),
        )
    if len(classes) < 2:
        (name,) = classes
        raise DataError(
            KEY, f"{location}: one class folder ({name!r}); a classifier needs two or more"
        )
    return [(path, name) for name in sorted(classes) for path in sorted(classes[name])]


def _visible(
    entries: list[pyarrow.fs.FileInfo], root: str
) -> Iterator[tuple[pyarrow.fs.FileInfo, list[str]]]:
    """Each entry with its path's parts below `root`, hidden ones (.DS_Store, .git) left out."""
    for entry in entries:
        parts = entry.path.removeprefix(root).strip("/").split("/")
        if parts[0] and not any(part.startswith(".") for part in parts):
            yield entry, parts


def _decode(filesystem: pyarrow.fs.FileSystem, path: str, location: str, root: str) -> Image.Image:
    from PIL import Image, ImageOps

    name = location.rstrip("/") + "/" + path.removeprefix(root).strip("/")
    try:
        with filesystem.open_input_stream(path) as stream:
            raw = bytes(stream.readall())
    except OSError as exc:
        raise DataError(KEY, f"cannot read {name}: {exc}") from None
    try:
        image = Image.open(io.BytesIO(raw))
        image.load()  # decode now: a truncated file fails here, named, not in a trial
        # A camera's JPEG stores its rotation apart from its pixels.
        return ImageOps.exif_transpose(image)
    except Exception as exc:  # any decoder failure is a bad file, said in one line
        raise DataError(KEY, f"{name}: not a readable image: {exc}") from None


def _check_size(location: str, count: int, channels: int, side: int) -> None:
    size = count * channels * side * side * 4
    if size > MAX_FEATURE_BYTES:
        raise DataError(
            KEY,
            f"{location}: {count} images of {channels}x{side}x{side} would take "
            f"{size / 2**30:.1f} GiB as float32 (at most {MAX_FEATURE_BYTES // 2**30} GiB); "
            "lower image_size or use fewer images",
        )
