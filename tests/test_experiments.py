"""A sweep's experiments in storage: every run of a sweep gets a folder of its own, and
the latest is the one `tuner resume` finds."""

from __future__ import annotations

from pathlib import Path

from tuner.engine.experiments import Experiment, latest_experiment
from tuner.engine.storage import resolve_storage
from tuner.spec import parse_spec

SPEC = parse_spec(
    {
        "name": "twice",
        "trainable": "builtin:classifier",
        "metric": "val_accuracy",
        "mode": "max",
        "params": {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}},
    }
)


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path: Path) -> None:
    storage = resolve_storage(str(tmp_path))
    runs = [Experiment.new(storage, "twice") for _ in range(20)]
    assert len({run.path for run in runs}) == len(runs)
    for run in runs:
        run.save_spec(SPEC)
    assert len(list((tmp_path / "twice").iterdir())) == len(runs)


def test_the_latest_run_is_the_one_started_last(tmp_path: Path) -> None:
    storage = resolve_storage(str(tmp_path))
    older = Experiment(storage, "twice", "run-20261201-235959-999ffff")
    newer = Experiment.new(storage, "twice")
    for run in (newer, older):
        run.save_spec(SPEC)
    assert latest_experiment(storage, "twice").name == newer.name
    assert newer.load_spec() == SPEC


def test_a_run_stopped_as_it_started_does_not_hide_the_sweep_before_it(tmp_path: Path) -> None:
    """`tuner run` again by mistake and a Ctrl-C at once: Ray wrote tuner.pkl, no trials.
    `tuner resume` refused that empty run and advised `tuner run`: the older run's
    trials, interrupted mid-sweep, were out of reach."""
    storage = resolve_storage(str(tmp_path))
    older = Experiment(storage, "twice", "run-20261201-235959-999ffff")
    newer = Experiment.new(storage, "twice")
    for run in (older, newer):
        run.save_spec(SPEC)
        (Path(run.path) / "tuner.pkl").write_bytes(b"")
    (Path(older.path) / "experiment_state-2026-12-01_23-59-59.json").write_text("{}")
    assert latest_experiment(storage, "twice").name == older.name
    (Path(newer.path) / "experiment_state-2026-12-02_00-00-00.json").write_text("{}")
    assert latest_experiment(storage, "twice").name == newer.name
