"""The sweep-file contract: valid files load, every invalid case gets its one clear line."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, SEARCH_SPACES, run_cli
from tuner import load_spec
from tuner.spec import SpecError

SHIPPED = sorted(SEARCH_SPACES.glob("*.yaml"))

VALID: dict[str, Any] = {
    "name": "t",
    "trainable": "builtin:classifier",
    "metric": "val_accuracy",
    "mode": "max",
    "num_samples": 2,
    "searcher": {"kind": "optuna", "sampler": "tpe", "seed": 0},
    "scheduler": {"kind": "asha", "max_t": 9, "grace_period": 1, "reduction_factor": 3},
    "params": {
        "lr": {"type": "float", "low": 1e-4, "high": 0.3, "log": True},
        "optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
    },
    "config": {"epochs": 9},
}


def write(tmp_path: Path, data: Any, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def mutate(**changes: Any) -> dict[str, Any]:
    """VALID with dotted-path changes; a value of None deletes the key."""
    data = copy.deepcopy(VALID)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = data
        for part in parents:
            node = node[part]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    return data


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_sweeps_validate(path: Path) -> None:
    spec = load_spec(path)
    assert spec.name and spec.params


def test_search_spaces_cover_grid_random_and_tpe_with_asha() -> None:
    kinds = {(s.searcher.kind, s.scheduler.kind) for s in map(load_spec, SHIPPED)}
    assert {("grid", "fifo"), ("random", "asha"), ("optuna", "asha")} <= kinds


INVALID = [
    pytest.param(mutate(epochz=3), "epochz", "unknown key", id="unknown-top-key"),
    pytest.param(
        mutate(params__lr__lowx=1), "params.lr.lowx", "unknown key", id="unknown-param-key"
    ),
    pytest.param(
        mutate(params__lr__high=1e-5), "params.lr.high", "must be greater than low", id="low>=high"
    ),
    pytest.param(
        mutate(params__opt={"type": "categorical", "choices": ["adam", "sgd", "adam"]}),
        "params.opt.choices",
        "'adam' is listed more than once: list each value once",
        id="choice-listed-twice",  # drawn twice as often, and Optuna maps it to one place
    ),
    pytest.param(
        mutate(params__width={"type": "grid", "values": [32, 64, 32]}),
        "params.width.values",
        "32 is listed more than once",
        id="grid-value-listed-twice",  # its trials would run twice
    ),
    pytest.param(
        mutate(params__lr={"type": "float", "low": 0.0, "high": 1.0, "log": True}),
        "params.lr.log",
        "log scale needs low > 0",
        id="log-with-zero-low",
    ),
    pytest.param(
        mutate(params__optimizer={"type": "categorical", "choices": []}),
        "params.optimizer.choices",
        "at least 1 item",
        id="empty-choices",
    ),
    pytest.param(
        mutate(searcher={"kind": "bayes"}),
        "searcher.kind",
        "unknown kind 'bayes'",
        id="bad-searcher",
    ),
    pytest.param(
        mutate(scheduler={"kind": "hyperband"}),
        "scheduler.kind",
        "unknown kind 'hyperband'",
        id="bad-scheduler",
    ),
    pytest.param(
        mutate(params__batch_size={"type": "grid", "values": [32, 64]}),
        "params.batch_size.type",
        "grid axes need searcher kind grid or random",
        id="grid-axis-with-optuna",
    ),
    pytest.param(
        mutate(trainable="no_such_package.train:fit"),
        "trainable",
        "cannot import 'no_such_package.train'",
        id="trainable-does-not-import",
    ),
    pytest.param(
        mutate(trainable="json:no_such_function"),
        "trainable",
        "module 'json' has no attribute 'no_such_function'",
        id="trainable-attribute-missing",
    ),
    pytest.param(
        mutate(trainable="builtin:nope"), "trainable", "unknown built-in", id="bad-builtin"
    ),
    pytest.param(mutate(metric=None), "metric", "required key is missing", id="missing-metric"),
    pytest.param(mutate(mode="maximize"), "mode", "'max' or 'min'", id="bad-mode"),
    pytest.param(
        mutate(params__lr={"type": "double", "low": 1, "high": 2}),
        "params.lr.type",
        "unknown type 'double'",
        id="bad-param-type",
    ),
    pytest.param(
        mutate(params__learning_rate={"type": "float", "low": 0.1, "high": 0.2}),
        "params.learning_rate",
        "has no knob 'learning_rate'",
        id="unknown-knob",
    ),
    pytest.param(
        mutate(params__optimizer={"type": "categorical", "choices": ["adam", "lion"]}),
        "params.optimizer.choices[1]",
        "knob 'optimizer'",
        id="bad-knob-choice",
    ),
    pytest.param(
        mutate(config__epochs=0), "config.epochs", "greater than 0", id="bad-config-value"
    ),
    pytest.param(
        mutate(params__hidden={"type": "float", "low": 8, "high": 64}),
        "params.hidden.type",
        "is an integer",
        id="float-range-for-int-knob",
    ),
    pytest.param(
        mutate(scheduler={"kind": "asha", "max_t": 3, "grace_period": 5}),
        "scheduler.grace_period",
        "must be <= max_t",
        id="grace-above-max-t",
    ),
    pytest.param(
        mutate(config__lr=0.1), "config.lr", "also a searched param", id="param-and-config-clash"
    ),
    pytest.param(
        mutate(params__optimizer={"type": "categorical", "choices": ["adam", None]}),
        "params.optimizer.choices[1]",
        "must be a string, a number or true/false, not null",
        id="null-choice",  # was `choices[1].str: Input should be a valid string (and 3 more...)`
    ),
    pytest.param(
        mutate(params__optimizer={"type": "categorical", "choices": [["adam"], {"a": 1}]}),
        "params.optimizer.choices[0]",
        "must be a string, a number or true/false, not a list (and 1 more problem)",
        id="list-choice",
    ),
    pytest.param(
        {**VALID, "params": {**VALID["params"], True: {"type": "float", "low": 0, "high": 1}}},
        "params",
        "YAML reads a name here as true, not as text",
        id="on-as-a-name",  # was `params.1.[key]: Input should be a valid string`
    ),
    pytest.param(  # each was "String should match pattern '^[A-Za-z0-9][A-Za-z0-9._-]*$'"
        mutate(name="../etc"),
        "name",
        "must be letters, digits, '.', '_' and '-', starting with a letter or digit (got '../etc')",
        id="name-with-a-path",
    ),
    pytest.param(
        mutate(trainable="train.py"),
        "trainable",
        "'train.py' is neither 'package.module:function' nor 'builtin:NAME'",
        id="trainable-as-a-file",
    ),
    pytest.param(["a", "list"], "", "must be a YAML mapping", id="not-a-mapping"),
    pytest.param("name: [unclosed\n", "", "YAML syntax error at line 2", id="yaml-syntax"),
]


@pytest.mark.parametrize(("data", "key", "problem"), INVALID)
def test_invalid_sweep_gets_one_clear_line(
    tmp_path: Path, data: Any, key: str, problem: str
) -> None:
    path = write(tmp_path, data)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    error = caught.value
    assert error.file == str(path)
    assert error.key == key
    assert problem in error.problem
    assert "\n" not in error.line()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file not found"):
        load_spec(tmp_path / "absent.yaml")


def test_validate_cli_reports_each_bad_file_and_exits_2(tmp_path: Path) -> None:
    bad = write(tmp_path, mutate(params__lr__high=1e-5), "bad.yaml")
    good = SHIPPED[0]
    result = run_cli("validate", str(good), str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout.startswith(f"ok: {good}")
    assert result.stderr.strip() == (
        f"error: {bad}: params.lr.high: must be greater than low (0.0001 >= 1e-05)"
    )
    assert "Traceback" not in result.stderr


def test_validate_shows_a_file_name_of_escape_codes_escaped(tmp_path: Path) -> None:
    """A name with a line break or a terminal's escape codes: `ok:` printed it raw, so
    the terminal ran the codes, and one file's line became two."""
    name = "sweep\n\x1b[2J.yaml"
    (tmp_path / name).write_text(SHIPPED[0].read_text())
    result = run_cli("validate", name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: sweep\\n\\x1b[2J.yaml (")
    assert "\x1b" not in result.stdout + result.stderr
    assert len(result.stdout.splitlines()) == 1


def test_run_cli_rejects_bad_file_before_starting_anything(tmp_path: Path) -> None:
    bad = write(tmp_path, mutate(searcher={"kind": "bayes"}), "bad.yaml")
    result = run_cli("run", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "searcher.kind: unknown kind 'bayes'" in result.stderr
    # Nothing was started or written: no tracking database, no Ray results.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_validation_imports_neither_ray_nor_torch() -> None:
    code = (
        "import sys; from tuner import load_spec; "
        f"[load_spec(p) for p in {[str(p) for p in SHIPPED]!r}]; "
        "print(sorted(m for m in ('ray', 'torch', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_run_refuses_trials_bigger_than_this_machine(tmp_path: Path) -> None:
    data = mutate(resources_per_trial={"cpu": 1, "gpu": 64})
    path = write(tmp_path, data, "big.yaml")
    result = run_cli("run", str(path), cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    expected = f"error: {path}: resources_per_trial.gpu: each trial asks for 64 GPU"
    assert lines[0].startswith(expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.yaml"]


def test_a_part_of_tuner_imports_without_the_engine() -> None:
    """Every trial process imports `tuner` first, for its trainer: the package's own
    module leaves the engine (Ray Tune's storage, pyarrow) to those who call it."""
    code = (
        "import sys; import tuner.trainer.knobs, tuner.trainer.notices; "
        "print(sorted(m for m in sys.modules if m.startswith('tuner.engine')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
