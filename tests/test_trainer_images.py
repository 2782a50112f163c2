"""Image folders as data: one sub-folder per class, local or on S3, load to (N, C, H, W) in
[0, 1] at `image_size`; bad folders are one line; a CNN sweep trains on one end to end."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import yaml
from mlflow import MlflowClient
from PIL import Image

import tuner.trainer.data_images
from tests.conftest import S3_BUCKET, run_cli
from tuner.engine.trainables import with_absolute_paths
from tuner.spec import parse_spec
from tuner.trainer.data import Arrays, DataError, DataSource, load_arrays, split_arrays
from tuner.trainer.knobs import ClassifierKnobs, RegressorKnobs

SIDE = 24
PER_CLASS = 30
CLASSES = ("blob", "horizontal", "vertical")  # sorted: class indices 0, 1, 2


def picture(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A noisy 24x24 grey picture of its class: a bright blob, or stripes one way."""
    pixels = rng.uniform(0, 60, (SIDE, SIDE))
    if kind == "blob":
        y, x = rng.integers(6, SIDE - 6, 2)
        pixels[y - 4 : y + 4, x - 4 : x + 4] = 255
    else:
        start = rng.integers(0, 4)
        stripes = (np.arange(SIDE) + start) % 6 < 3
        if kind == "horizontal":
            pixels[stripes, :] = 220
        else:
            pixels[:, stripes] = 220
    return pixels.astype(np.uint8)


def write_folder(root: Path, colour: bool = True) -> Path:
    """3 classes of 30 images; with `colour`, the vertical class is RGB JPEGs (tinted red)
    and the rest grey PNGs, some with upper-case suffixes, beside files that are no images."""
    rng = np.random.default_rng(0)
    for kind in CLASSES:
        folder = root / kind
        folder.mkdir(parents=True)
        for i in range(PER_CLASS):
            grey = picture(kind, rng)
            if colour and kind == "vertical":
                rgb = np.stack([grey, grey // 2, grey // 2], axis=-1)
                Image.fromarray(rgb).save(folder / f"{i:02}.{'JPEG' if i % 2 else 'jpg'}")
            else:
                Image.fromarray(grey).save(folder / f"{i:02}.{'PNG' if i % 5 == 0 else 'png'}")
        (folder / "notes.txt").write_text("not an image")
        (folder / ".DS_Store").write_bytes(b"\0\1")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder(tmp_path_factory.mktemp("images") / "shapes")


def load(location: str, **knobs: Any) -> Arrays:
    return load_arrays(
        DataSource.of(ClassifierKnobs(data_path=location, **knobs)), "classification"
    )


def test_a_folder_loads_one_sample_per_image_labelled_by_its_sub_folder(folder: Path) -> None:
    arrays = load(f"{folder}/")
    # One class of RGB images: every image is read as RGB (the grey ones on 3 channels).
    assert arrays.features.shape == (3 * PER_CLASS, 3, 32, 32)  # image_size's default
    assert arrays.features.dtype == np.float32
    assert arrays.features.min() >= 0 and arrays.features.max() <= 1
    assert arrays.labels.tolist() == [0] * PER_CLASS + [1] * PER_CLASS + [2] * PER_CLASS
    assert arrays.classes == tuple(sorted(CLASSES))  # the sub-folders' names, as sorted
    # A grey image is the same on each channel; a red-tinted one is not.
    assert np.array_equal(arrays.features[0, 0], arrays.features[0, 2])
    assert (arrays.features[-1, 0] > arrays.features[-1, 2]).any()
    # A local directory is a folder with or without the slash; image_size resizes.
    small = load(str(folder), image_size=16)
    assert small.features.shape == (3 * PER_CLASS, 3, 16, 16)
    splits = split_arrays(small, "classification")
    assert splits.is_image and splits.feature_shape == (3, 16, 16) and splits.num_classes == 3
    assert splits.classes == arrays.classes


def test_an_all_grey_folder_is_one_channel_at_its_own_size(tmp_path: Path) -> None:
    write_folder(tmp_path / "grey", colour=False)
    arrays = load(f"{tmp_path / 'grey'}/", image_size=SIDE)
    assert arrays.features.shape == (3 * PER_CLASS, 1, SIDE, SIDE)
    first = np.asarray(Image.open(tmp_path / "grey" / "blob" / "00.PNG"), dtype=np.float32)
    assert np.allclose(arrays.features[0, 0], first / 255)


def test_a_16_bit_grey_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    write_folder(tmp_path / "deep", colour=False)
    half = np.full((SIDE, SIDE), 2**15, np.uint16)  # mid-grey in 16 bits
    Image.fromarray(half).save(tmp_path / "deep" / "blob" / "deep.png")
    arrays = load(f"{tmp_path / 'deep'}/", image_size=SIDE)
    assert Image.open(tmp_path / "deep" / "blob" / "deep.png").mode.startswith("I")
    # Sorted after 00.PNG..29.png within its class: the blob class's last sample.
    assert np.allclose(arrays.features[PER_CLASS, 0], 128 / 255)


def test_image_size_is_part_of_the_data_source(folder: Path) -> None:
    # Trials that search image_size must not share one cached copy of the data.
    small, large = (ClassifierKnobs(data_path=f"{folder}/", image_size=s) for s in (16, 24))
    assert DataSource.of(small) != DataSource.of(large)


def test_a_relative_folder_keeps_its_slash_when_made_absolute(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "name": "f",
            "trainable": "builtin:classifier",
            "metric": "val_accuracy",
            "mode": "max",
            "params": {"lr": {"type": "float", "low": 1e-3, "high": 1e-1}},
            "config": {"data_path": "shapes/"},
        }
    )
    assert with_absolute_paths(spec).config["data_path"] == str(Path.cwd() / "shapes") + "/"


def _one_class(root: Path) -> str:
    (root / "only").mkdir(parents=True)
    for i in range(12):
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(root / "only" / f"{i}.png")
    return f"{root}/"


def _loose_images(root: Path) -> str:
    root.mkdir()
    for i in range(12):
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(root / f"{i}.png")
    return f"{root}/"


def _with(root: Path, name: str, data: bytes) -> str:
    write_folder(root, colour=False)
    path = root / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return f"{root}/"


BAD_FOLDERS = {
    "missing": (lambda root: f"{root}/", "shapes/: folder not found"),
    "no-class-folders": (_loose_images, "no class sub-folders"),
    "a-class-without-images": (
        lambda root: _with(root, "empty/readme.txt", b"hello"),
        "no .png, .jpg, .jpeg images in class folder 'empty'",
    ),
    "undecodable": (
        lambda root: _with(root, "blob/broken.png", b"\x89PNG not really"),
        "shapes/blob/broken.png: not a readable image",
    ),
    "one-class": (_one_class, "one class folder ('only'); a classifier needs two or more"),
    "s3-file-suffix": (lambda root: "s3://bucket/images", "or a folder of images"),
}


@pytest.mark.parametrize("case", BAD_FOLDERS)
def test_a_bad_folder_is_one_clear_line(case: str, tmp_path: Path) -> None:
    make, problem = BAD_FOLDERS[case]
    location = make(tmp_path / "shapes")
    with pytest.raises(DataError) as caught:
        load(location)
    assert caught.value.key == "config.data_path"
    assert problem in caught.value.problem
    assert "\n" not in str(caught.value)


def test_regression_on_a_folder_is_refused(folder: Path) -> None:
    source = DataSource.of(RegressorKnobs(data_path=f"{folder}/"))
    with pytest.raises(DataError, match="image folders are for classification"):
        load_arrays(source, "regression")


def test_a_folder_too_big_for_memory_is_refused_before_decoding(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 90 RGB images of 32x32 as float32 take 1.1 MB: above this limit, below once grey.
    monkeypatch.setattr(tuner.trainer.data_images, "MAX_FEATURE_BYTES", 90 * 32 * 32 * 4 * 2)
    with pytest.raises(DataError, match=r"90 images of 3x32x32 would take .* lower image_size"):
        load(f"{folder}/")
    assert load(f"{folder}/", image_size=16).features.shape[1] == 3


def test_validate_finds_a_broken_image_before_anything_runs(tmp_path: Path) -> None:
    _with(tmp_path / "shapes", "horizontal/cut.jpg", b"\xff\xd8\xff\xe0 cut short")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep("shapes/")))
    out = run_cli("validate", "s.yaml", cwd=tmp_path)
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: s.yaml: config.data_path: shapes/horizontal/cut.jpg: ")


def sweep(data_path: str, **config: Any) -> dict[str, Any]:
    return {
        "name": "shapes-cnn",
        "trainable": "builtin:classifier",
        "metric": "val_accuracy",
        "mode": "max",
        "num_samples": 2,
        "max_concurrent_trials": 2,
        "searcher": {"kind": "random", "seed": 0},
        "params": {"lr": {"type": "float", "low": 3e-3, "high": 1e-2, "log": True}},
        "config": {
            "data_path": data_path,
            "model": "cnn",
            "image_size": 16,
            "channels": 8,
            "epochs": 3,
            "batch_size": 8,
            **config,
        },
    }


@pytest.mark.e2e
def test_a_cnn_sweep_trains_on_an_image_folder(folder: Path, tmp_path: Path) -> None:
    # A relative path with a slash, as a user writes it: the trials run elsewhere.
    shutil.copytree(folder, tmp_path / "shapes")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep("shapes/")))
    done = run_cli("run", "s.yaml", cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("shapes-cnn")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    trials = [r for r in runs if r.data.tags.get("tuner.role") == "trial"]
    assert len(trials) == 2
    assert {r.info.status for r in trials} == {"FINISHED"}
    # 18 validation images of 3 classes: chance is 1/3.
    best = max(r.data.metrics["val_accuracy"] for r in trials)
    assert best > 0.8, [r.data.metrics for r in trials]


def test_an_s3_folder_loads_the_same_arrays_as_the_local_one(
    folder: Path, s3_endpoint: str
) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for path in folder.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), S3_BUCKET, f"sets/shapes/{path.relative_to(folder)}")
    remote = load(f"s3://{S3_BUCKET}/sets/shapes/", image_size=16)
    local = load(f"{folder}/", image_size=16)
    assert np.array_equal(remote.features, local.features)
    assert np.array_equal(remote.labels, local.labels)
    with pytest.raises(DataError, match="folder not found"):
        load(f"s3://{S3_BUCKET}/sets/absent/")
