"""`tune.report` called as older examples call it, run through the `tuner` command: each
trial failed with a line about Ray's internals (`'float' object has no attribute
'items'`) or Python's bare signature error, naming nothing the user should change."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.test_user_code import write_sweep
from tuner.engine.report_calls import ReportCallError, check_call
from tuner.tracking.results import error_hint

OLD_CALLS_CODE = """
    import os
    import tempfile

    from ray import tune


    def fit(config):
        folder = tempfile.mkdtemp()
        if config["call"] == "number":
            tune.report(0.5)
        elif config["call"] == "folder":
            tune.report({"loss": 0.5}, checkpoint=folder)
        else:
            tune.report(loss=0.5)  # Ray 1's keyword style
"""


def test_a_report_call_is_checked_before_ray_reads_it() -> None:
    check_call({"loss": 1.0}, None, call="ray.tune.report", example="'loss'")
    with pytest.raises(ReportCallError, match=r"not a float \(0.5\): ray.tune.report\(\{'loss'"):
        check_call(0.5, None, call="ray.tune.report", example="'loss'")
    with pytest.raises(ReportCallError, match=r"takes a ray\.train\.Checkpoint, not a PosixPath"):
        check_call({"loss": 1.0}, Path("/tmp/x"), call="ray.train.report", example="'loss'")
    assert error_hint("TypeError: report() missing 1 required positional argument: 'metrics'")


@pytest.mark.e2e
def test_old_style_report_calls_fail_with_the_call_to_make(tmp_path: Path) -> None:
    sweep = write_sweep(
        tmp_path,
        OLD_CALLS_CODE,
        metric="loss",
        mode="min",
        searcher={"kind": "grid"},
        fail_fast_after=5,
        params={"call": {"type": "grid", "values": ["number", "folder", "keywords"]}},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    failed = {
        line.split("call=")[-1] if "call=" in line else line
        for line in out.stdout.splitlines()
        if line.startswith("trial ") and " failed" in line
    }
    assert len(failed) == 3, out.stdout
    text = "\n".join(failed)
    assert (
        "ReportCallError: ray.tune.report() takes a dict of metrics, not a float (0.5): "
        "ray.tune.report({'loss': value})" in text
    )
    assert (
        "ReportCallError: ray.tune.report(checkpoint=...) takes a ray.tune.Checkpoint, "
        "not a str ('/tmp/" in text
    )
    assert "checkpoint=ray.tune.Checkpoint.from_directory(folder)" in text
    assert (
        "TypeError: report() got an unexpected keyword argument 'loss' -- ray.tune.report "
        "takes one dict of metrics" in text
    )
    assert "has no attribute" not in out.stdout
