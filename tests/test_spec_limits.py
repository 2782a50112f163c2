"""Careless and hostile sweep files: each is one line naming the file and the problem, in
bounded time and memory, before anything starts. Written here in the test, not taken
from a list of known cases."""

from __future__ import annotations

import os
import resource
import textwrap
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tuner.spec import FloatParam, SpecError, read_spec
from tuner.spec.limits import MAX_FILE_BYTES, MAX_VALUES

HEAD = textwrap.dedent(
    """\
    name: limits
    trainable: builtin:classifier
    metric: val_accuracy
    mode: max
    params:
      lr: {type: float, low: 0.0001, high: 0.1, log: true}
    """
)


def refusal(path: Path) -> SpecError:
    with pytest.raises(SpecError) as caught:
        read_spec(path)
    assert str(path) in caught.value.line()
    return caught.value


def test_aliases_that_expand_to_billions_of_values_are_refused_in_bounded_memory(
    tmp_path: Path,
) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 10)]
    path = tmp_path / "laughs.yaml"
    path.write_text(HEAD + "config:\n" + "".join(f"  {line}\n" for line in levels))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    error = refusal(path)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert f"expands to more than {MAX_VALUES:,} values" in error.problem
    assert grown_mb < 200


def test_a_key_written_twice_is_an_error_not_the_last_one_silently(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(HEAD + "num_samples: 8\nnum_samples: 5000\n")
    error = refusal(path)
    assert error.key == "num_samples"
    assert "written twice, at lines 7 and 8" in error.problem


def test_a_merge_may_still_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text(HEAD + "config:\n  <<: &base {epochs: 3, dropout: 0.1}\n  epochs: 5\n")
    assert read_spec(path).config == {"epochs": 5, "dropout": 0.1}


def test_a_byte_order_mark_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + HEAD.encode())
    assert read_spec(path).name == "limits"


def test_a_file_too_big_to_be_a_sweep_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("w") as out:
        out.write(HEAD + "config:\n")
        out.write("  # padding\n" * (MAX_FILE_BYTES // 10))
    assert f"a sweep file is at most {MAX_FILE_BYTES:,}" in refusal(path).problem


def test_nesting_too_deep_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(HEAD + "config:\n  x: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested" in refusal(path).problem


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_something_that_is_not_a_file_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    """A FIFO would block a read forever; /dev/zero would never end one."""
    if kind == "fifo":
        path = tmp_path / "pipe.yaml"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    done = run_cli("validate", str(path), cwd=tmp_path, timeout=30)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {path}: is not a regular file, expected a sweep file"


@pytest.mark.parametrize(
    ("bounds", "key", "problem"),
    [
        ("{type: float, low: .nan, high: 1.0}", "params.lr.low", "must be a finite number"),
        ("{type: float, low: 0.0, high: .inf}", "params.lr.high", "must be a finite number"),
        ("{type: float, low: 0.0, high: 1e309}", "params.lr.high", "must be a finite number"),
        ("{type: float, low: true, high: 2.0}", "params.lr.low", "not true or false"),
        ("{type: int, low: 1, high: true}", "params.lr.high", "not true or false"),
        ("{type: int, low: 0, high: 99999999999999999999}", "params.lr.high", "less than or"),
        (
            "{type: float, low: -1.0e308, high: 1.0e308}",
            "params.lr",
            "high - low is more than the largest number",
        ),
    ],
)
def test_bounds_ray_and_optuna_cannot_sample_are_refused_at_validate(
    tmp_path: Path, bounds: str, key: str, problem: str
) -> None:
    path = tmp_path / "bounds.yaml"
    path.write_text(HEAD.replace("{type: float, low: 0.0001, high: 0.1, log: true}", bounds))
    error = refusal(path)
    assert error.key == key
    assert problem in error.problem


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("9" * 10_000, "YAML value at line 8, column 11: an integer of 10,000 digits is too large"),
        ("2001-13-45", "YAML value at line 8, column 11: '2001-13-45' is not a valid timestamp"),
        ("!!bool maybe", "YAML value at line 8, column 11: 'maybe' is not a valid bool"),
        ("017", "YAML value at line 8, column 11: YAML 1.1 reads 017 as octal, 15: write 17 "),
        ("-017", "YAML value at line 8, column 11: YAML 1.1 reads -017 as octal, -15: write -17 "),
        ("1:30", "YAML value at line 8, column 11: YAML 1.1 reads 1:30 as base 60, 90: write 90,"),
        ("1:30.5", "YAML value at line 8, column 11: YAML 1.1 reads 1:30.5 as base 60, 90.5"),
        ("!!float abc", "YAML value at line 8, column 11: 'abc' is not a valid float"),
        ("!!timestamp soon", "YAML value at line 8, column 11: 'soon' is not a valid timestamp"),
    ],
)
def test_a_value_yaml_cannot_read_is_one_line_with_its_place(
    tmp_path: Path, value: str, problem: str
) -> None:
    """PyYAML let these escape as a bare ValueError, KeyError or AttributeError: a
    traceback of 90 lines and exit status 1; and read `017` as 15, `1:30` as 90."""
    path = tmp_path / "value.yaml"
    path.write_text(HEAD + f"config:\n  epochs: {value}\n")
    done = run_cli("validate", str(path), cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {path}: {problem}")
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_range_as_wide_as_floats_go_is_fine_on_a_log_scale(tmp_path: Path) -> None:
    """Uniform sampling overflowed in the driver after Ray started (OverflowError: Range
    exceeds valid bounds); a log scale samples between the logs."""
    path = tmp_path / "wide.yaml"
    path.write_text(HEAD.replace("low: 0.0001, high: 0.1", "low: 1.0e-300, high: 1.7e308"))
    param = read_spec(path).params["lr"]
    assert isinstance(param, FloatParam) and param.high == 1.7e308


def test_numbers_yaml_reads_as_written_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "numbers.yaml"
    path.write_text(HEAD + "num_samples: 0x10\nconfig: {epochs: 1_000, seed: 0, dropout: 0.05}\n")
    spec = read_spec(path)
    assert (spec.num_samples, spec.config) == (16, {"epochs": 1000, "seed": 0, "dropout": 0.05})


def test_a_huge_key_is_cut_short_in_the_line(tmp_path: Path) -> None:
    """YAML's explicit key (`? KEY`) has no length limit: the line once carried a 900 KB
    key whole."""
    path = tmp_path / "key.yaml"
    path.write_text(HEAD + "config:\n  ? " + "k" * 900_000 + "!\n  : 1\n")
    line = refusal(path).line()
    assert len(line) < 2500
    assert "... (900,008 characters): " in line
