"""`tuner resume sweep.yaml` after the file was edited: the resume goes on with the sweep
as it started (Ray Tune restores it as saved), and says which of the file's values it
does not use. It ran the old sweep without a word: num_samples raised from 2 to 4 still
ran 2 trials, a range widened still drew from the old one."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import run_and_signal, run_cli, write_slow_sweep
from tuner.engine.file_changes import changes_note
from tuner.spec import parse_spec

SWEEP: dict[str, Any] = {
    "name": "edited",
    "trainable": "slow:fit",
    "metric": "loss",
    "mode": "min",
    "num_samples": 2,
    "params": {
        "x": {"type": "float", "low": 0.0, "high": 1.0},
        "y": {"type": "int", "low": 1, "high": 4},
    },
    "config": {"epochs": 3, "password": "hunter2"},
}


def _as_started(raw: dict[str, Any]) -> Any:
    return parse_spec(raw).without_secrets()[0]  # as `tuner run` stores it


def test_an_unchanged_file_says_nothing_its_secret_withheld_in_storage_or_not() -> None:
    assert changes_note(_as_started(SWEEP), parse_spec(SWEEP)) is None


def test_each_changed_key_is_named_with_the_value_the_resume_goes_on_with() -> None:
    params = {"x": {**SWEEP["params"]["x"], "high": 2.0}}  # y removed
    edited = {**SWEEP, "num_samples": 4, "trainable": "slow2:fit", "params": params}
    note = changes_note(_as_started(SWEEP), parse_spec(edited))
    assert note == (
        "warning: the sweep file differs from sweep 'edited' as it started, and a resume "
        "goes on as it started (Ray Tune restores its trials and searcher as saved): "
        "trainable 'slow:fit' (file: 'slow2:fit'), num_samples 2 (file: 4), "
        "params.x.high 1.0 (file: 2.0), params.y {'type': 'int', 'low': 1, 'high': 4} "
        "(file: unset); `tuner run` on the file starts a new sweep with its values"
    )


@pytest.mark.e2e
def test_resume_from_an_edited_file_says_what_it_does_not_use(tmp_path: Path) -> None:
    started = write_slow_sweep(tmp_path, "edited", num_samples=2, epochs=6)
    done = run_and_signal(tmp_path, started, signal.SIGTERM, "run", "sweep.yaml")
    assert done.returncode == 143, done.stderr
    sweep_file = tmp_path / "sweep.yaml"
    raw = yaml.safe_load(sweep_file.read_text())
    raw["num_samples"] = 4
    raw["params"]["x"]["high"] = 2.0
    sweep_file.write_text(yaml.safe_dump(raw))

    resumed = run_cli("resume", "sweep.yaml", cwd=tmp_path)

    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines()[0] == (
        "warning: the sweep file differs from sweep 'edited' as it started, and a resume "
        "goes on as it started (Ray Tune restores its trials and searcher as saved): "
        "num_samples 2 (file: 4), params.x.high 1.0 (file: 2.0); `tuner run` on the file "
        "starts a new sweep with its values"
    )
    assert "2 trials: 2 finished" in resumed.stdout  # as the warning said
