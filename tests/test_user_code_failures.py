"""How user code's failures reach the user, through the real `tuner` command: each is one
line naming the trial and what went wrong, the trial FAILED in MLflow with that line,
and none of Ray's own tracebacks on the terminal. The same style as
tests/test_user_code.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.test_user_code import trial_runs, write_sweep

SETUP_CODE = """
    from ray import tune


    class Loader(tune.Trainable):
        def setup(self, config):
            if config["height"] < 0:
                raise FileNotFoundError("no data at /data/missing.csv")
            self.timestep = 0

        def step(self):
            self.timestep += 1
            return {"reward": self.config["height"] * self.timestep}

        def cleanup(self):
            print("cleaned up", self.timestep)  # fails on a trial whose setup failed


    class Reused(Loader):
        def reset_config(self, new_config):
            self.timestep = 0
            return True
"""


@pytest.mark.e2e
@pytest.mark.parametrize("trainable", ["Loader", "Reused"])
def test_a_class_whose_setup_raises_fails_its_trial_with_one_line(
    tmp_path: Path, trainable: str
) -> None:
    sweep = write_sweep(
        tmp_path,
        SETUP_CODE,
        trainable=f"user_train:{trainable}",
        metric="reward",
        mode="max",
        searcher={"kind": "grid"},
        stop={"training_iteration": 2},
        max_concurrent_trials=1,
        fail_fast_after=None,
        params={"height": {"type": "grid", "values": [-1.0, 1.0]}},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    line = "FileNotFoundError: no data at /data/missing.csv"
    assert f"failed before its first result: {line} (traceback: " in out.stdout
    assert "2 trials: 1 finished" in out.stdout and "1 failed" in out.stdout
    # Ray's worker printed ~30 lines here: "Exception raised in creation task" and the
    # traceback, each line prefixed with the worker's pid.
    assert "creation task" not in out.stderr and "Traceback" not in out.stderr
    assert "pid=" not in out.stderr, out.stderr
    _, parent, trials = trial_runs(tmp_path)
    assert parent.info.status == "FINISHED"
    by_height = {run.data.params["height"]: run for run in trials}
    assert by_height["-1.0"].info.status == "FAILED"
    assert by_height["-1.0"].data.tags["tuner.error"] == line
    assert by_height["1.0"].info.status == "FINISHED"
    assert by_height["1.0"].data.metrics["reward"] == 2.0
    # The traceback kept for the user shows their setup() and the line that raised.
    [error_file] = (tmp_path / "tuner_runs" / "user-code").glob("run-*/trial_*/error.txt")
    text = error_file.read_text()
    assert "user_train.py" in text and 'raise FileNotFoundError("no data' in text


INTERRUPT_CODE = """
    from ray import tune


    def fetch(batch):
        if batch == 2:
            raise KeyboardInterrupt  # as a library does on a signal or a "stop" of its own
        return 1.0 / batch


    def fit(config):
        for batch in range(1, 4):
            tune.report({"loss": fetch(batch) * config["x"]})
"""


@pytest.mark.e2e
def test_a_keyboard_interrupt_in_a_trainable_says_where_it_was_raised(tmp_path: Path) -> None:
    sweep = write_sweep(
        tmp_path,
        INTERRUPT_CODE,
        metric="loss",
        mode="min",
        searcher={"kind": "grid"},
        params={"x": {"type": "grid", "values": [1.0]}},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path)
    assert out.returncode == 1
    where = f"{tmp_path / 'user_train.py'}:7 in fetch()"
    line = f"KeyboardInterrupt raised in the trainable at {where}"
    # It read "ray.exceptions.TaskCancelledError: Task: TaskID(...) was cancelled."
    assert f"failed after epoch 1: {line} (traceback: " in out.stdout
    assert "TaskCancelled" not in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    _, _, [trial] = trial_runs(tmp_path)
    assert trial.info.status == "FAILED"
    assert trial.data.tags["tuner.error"] == line


EMPTY_GENERATOR_CODE = """
    def fit(config):
        if config["kind"] == "interrupt":
            yield {"loss": 1.0}
            raise KeyboardInterrupt
        batches = [] if config["kind"] == "empty" else [1.0, 0.5]  # an empty data set
        for epoch, loss in enumerate(batches):
            # An early return or a bare yield: Ray skips a None, it is no result.
            yield None if config["kind"] == "none" else {"epoch": epoch, "loss": loss}
"""


@pytest.mark.e2e
def test_a_generator_that_yields_nothing_fails_its_trial_with_one_line(tmp_path: Path) -> None:
    sweep = write_sweep(
        tmp_path,
        EMPTY_GENERATOR_CODE,
        metric="loss",
        mode="min",
        searcher={"kind": "grid"},
        fail_fast_after=None,
        params={"kind": {"type": "grid", "values": ["empty", "none", "interrupt", "ok"]}},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    line = (
        "MetricNotReported: the trainable yielded no result: yield {'loss': value} once per epoch"
    )
    # It ran to FINISHED with an empty result, and Ray said "Last result: " on stdout.
    assert f"failed before its first result: {line} (traceback: " in out.stdout
    assert "Last result" not in out.stdout + out.stderr
    assert "TaskCancelled" not in out.stdout + out.stderr
    _, parent, trials = trial_runs(tmp_path)
    by_kind = {run.data.params["kind"]: run for run in trials}
    for kind in ("empty", "none"):
        assert by_kind[kind].info.status == "FAILED", kind
        assert by_kind[kind].data.tags["tuner.error"] == line
    # A generator's steps are carried as a function's are (tests above).
    where = f"{tmp_path / 'user_train.py'}:5 in fit()"
    assert by_kind["interrupt"].info.status == "FAILED"
    interrupted = f"KeyboardInterrupt raised in the trainable at {where}"
    assert by_kind["interrupt"].data.tags["tuner.error"] == interrupted
    assert by_kind["ok"].info.status == "FINISHED"
    assert parent.data.tags["tuner.best_run_id"] == by_kind["ok"].info.run_id
