"""Multi-worker trials in the sweep file: `resources_per_trial.workers` and `.placement`,
each refusal one line with its key, before Ray starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import run_cli
from tuner.engine.trainables import check_trainable
from tuner.spec import SpecError, parse_spec


def sweep(resources: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "s",
        "trainable": "builtin:classifier",
        "metric": "val_accuracy",
        "mode": "max",
        "resources_per_trial": resources,
        "params": {"lr": {"type": "float", "low": 0.001, "high": 0.1}},
        **extra,
    }


def problem(raw: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(raw, "s.yaml")
    return caught.value.key, caught.value.problem


def test_one_packed_worker_is_the_default() -> None:
    resources = parse_spec(sweep({"cpu": 1})).resources_per_trial
    assert (resources.workers, resources.placement, resources.distributed) == (1, "pack", False)


def test_workers_and_placement_are_taken() -> None:
    raw = sweep({"workers": 2, "cpu": 1, "gpu": 0, "placement": "spread"})
    resources = parse_spec(raw).resources_per_trial
    assert (resources.workers, resources.cpu, resources.placement) == (2, 1, "spread")
    assert resources.distributed
    assert parse_spec(sweep({"workers": 4, "gpu": 2})).resources_per_trial.gpu == 2


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_workers_is_a_whole_number_of_at_least_one(workers: Any) -> None:
    assert problem(sweep({"workers": workers}))[0] == "resources_per_trial.workers"


def test_several_workers_take_whole_gpus() -> None:
    key, text = problem(sweep({"workers": 2, "gpu": 0.5}))
    assert key == "resources_per_trial.gpu"
    assert "whole GPUs" in text and "0.5" in text
    # One worker may still share a GPU, as before.
    assert parse_spec(sweep({"workers": 1, "gpu": 0.5})).resources_per_trial.gpu == 0.5


def test_placement_is_pack_or_spread() -> None:
    key, text = problem(sweep({"workers": 2, "placement": "scatter"}))
    assert key == "resources_per_trial.placement" and "pack" in text and "spread" in text


def test_a_user_function_runs_on_several_workers() -> None:
    raw = {**sweep({"workers": 2}), "trainable": "tests.per_worker:fit", "metric": "loss"}
    raw["params"] = {"lr": {"type": "float", "low": 0.001, "high": 0.1}}
    check_trainable(parse_spec(raw))  # no refusal


GENERATOR = "def fit(config):\n    yield {'loss': 1.0}\n"


def test_several_workers_refuse_a_class_or_a_generator_in_one_line(tmp_path: Path) -> None:
    raw = {**sweep({"workers": 2}), "trainable": "tests.trainables:SecretsReceived"}
    with pytest.raises(SpecError) as caught:
        check_trainable(parse_spec(raw))
    assert caught.value.key == "resources_per_trial.workers"
    assert "a tune.Trainable class" in caught.value.problem

    (tmp_path / "gen.py").write_text(GENERATOR)
    path = tmp_path / "gen.yaml"
    path.write_text(yaml.safe_dump({**sweep({"workers": 2}), "trainable": "gen:fit"}))
    result = run_cli("validate", str(path), cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {path}: resources_per_trial.workers: 2 workers run")
    assert "'gen:fit' is a generator function" in lines[0]


def test_several_workers_run_under_pbt() -> None:
    # An exploit restarts a multi-worker trial from its donor (tests/test_ddp_pbt.py).
    scheduler = {"kind": "pbt", "perturbation_interval": 2}
    spec = parse_spec(sweep({"workers": 2}, scheduler=scheduler))
    assert spec.resources_per_trial.workers == 2 and spec.scheduler.kind == "pbt"


def test_validate_says_it_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(sweep({"workers": 0})))
    result = run_cli("validate", str(path), cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {path}: resources_per_trial.workers:")


@pytest.mark.parametrize(
    ("resources", "key", "said"),
    [
        # Each worker fits, all of them do not: workers x per-worker is what a trial needs.
        ({"workers": 64, "cpu": 1}, "resources_per_trial.workers", "64 workers x 1 CPUs"),
        ({"workers": 2, "cpu": 1, "gpu": 32}, "resources_per_trial.gpu", "2 workers x 32 GPU"),
    ],
)
def test_run_refuses_a_trial_whose_workers_outgrow_this_machine(
    tmp_path: Path, resources: dict[str, Any], key: str, said: str
) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(sweep(resources, config={"epochs": 1})))
    result = run_cli("run", str(path), cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {path}: {key}: each trial asks for {said}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.yaml"]


def test_validate_takes_cv_folds_with_several_workers(tmp_path: Path) -> None:
    # Each fold trains under DDP across the workers (tests/test_ddp_folds.py).
    path = tmp_path / "folds.yaml"
    path.write_text(yaml.safe_dump(sweep({"workers": 2}, config={"cv_folds": 3})))
    result = run_cli("validate", str(path), cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("resources", "words"),
    [
        ({"workers": 2, "cpu": 1}, "2 workers x 1 CPU"),
        (
            {"workers": 4, "cpu": 8, "gpu": 1, "placement": "spread"},
            "4 workers x 8 CPUs, 1 GPU (spread)",
        ),
        ({"workers": 2, "cpu": 0.5, "gpu": 2}, "2 workers x 0.5 CPUs, 2 GPUs"),
        ({"cpu": 1}, "1 worker x 1 CPU"),
    ],
)
def test_a_trials_workers_in_words(resources: dict[str, Any], words: str) -> None:
    """What `tuner status` shows and the trials' runs are tagged with (tuner.workers)."""
    assert parse_spec(sweep(resources)).resources_per_trial.described() == words
