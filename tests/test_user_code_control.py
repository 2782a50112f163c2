"""Training code that decides when trials end, run through the `tuner` command: class
Trainables (and reusing their workers), `stop` rules for `while True` loops, and failing
fast when every trial fails alike. The same style as tests/test_user_code.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.test_user_code import trial_runs, write_sweep
from tuner.search.stops import FailFast, ThresholdStopper, build_stoppers, reached, same_failures
from tuner.spec import SpecError, parse_spec
from tuner.tracking.results import error_hint, error_summary

# --- class Trainables -------------------------------------------------------------------

CLASS_CODE = """
    import json
    import os

    import numpy as np
    from ray import tune


    class MyTrainable(tune.Trainable):
        # In the style of Ray's BOHB example: state in setup, one step per iteration.
        def setup(self, config):
            self.timestep = 0

        def step(self):
            self.timestep += 1
            v = np.tanh(float(self.timestep) / self.config.get("width", 1))
            v *= self.config.get("height", 1)
            return {"episode_reward_mean": v, "worker_pid": os.getpid()}

        def save_checkpoint(self, checkpoint_dir):
            with open(os.path.join(checkpoint_dir, "state.json"), "w") as f:
                json.dump({"timestep": self.timestep}, f)

        def load_checkpoint(self, checkpoint_dir):
            with open(os.path.join(checkpoint_dir, "state.json")) as f:
                self.timestep = json.load(f)["timestep"]


    class WrongKey(MyTrainable):
        def step(self):
            return {"reward": 1.0}  # not the sweep's metric


    class Resettable(MyTrainable):
        def setup(self, config):
            if config["height"] < 0:
                raise ValueError("height must be positive")
            self.timestep = 0

        def reset_config(self, new_config):
            self.timestep = 0
            return True
"""


def class_sweep(tmp_path: Path, trainable: str, heights: list[float]) -> Path:
    return write_sweep(
        tmp_path,
        CLASS_CODE,
        trainable=f"user_train:{trainable}",
        metric="episode_reward_mean",
        mode="max",
        searcher={"kind": "grid"},
        scheduler={"kind": "asha", "max_t": 3, "grace_period": 3},
        max_concurrent_trials=1,
        params={"height": {"type": "grid", "values": heights}},
        config={"width": 2},
    )


@pytest.mark.e2e
def test_a_class_trainable_without_reset_config_gets_fresh_workers(tmp_path: Path) -> None:
    sweep = class_sweep(tmp_path, "MyTrainable", [1.0, 2.0, 3.0])
    out = run_cli("run", sweep.name, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == (
        "note: user_train:MyTrainable has no reset_config(): each trial starts a fresh "
        "worker; implement reset_config(new_config) -> True to let trials reuse workers"
    )
    assert "3 trials: 3 finished, 0 stopped early by ASHA, 0 failed" in out.stdout
    client, parent, trials = trial_runs(tmp_path)
    assert sorted(r.info.status for r in trials) == ["FINISHED"] * 3
    assert len({r.data.metrics["worker_pid"] for r in trials}) == 3, "a fresh worker per trial"
    best = max(trials, key=lambda r: r.data.metrics["episode_reward_mean"])
    assert best.data.params["height"] == "3.0"
    assert parent.data.tags["tuner.best_run_id"] == best.info.run_id
    for run in trials:
        steps = [p.step for p in client.get_metric_history(run.info.run_id, "worker_pid")]
        assert steps == [1, 2, 3]


@pytest.mark.e2e
def test_a_class_trainable_with_reset_config_reuses_workers_and_a_failed_start_has_its_run(
    tmp_path: Path,
) -> None:
    sweep = class_sweep(tmp_path, "Resettable", [-1.0, 1.0, 2.0])
    out = run_cli("run", sweep.name, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "note:" not in out.stdout
    assert "3 trials: 2 finished, 0 stopped early by ASHA, 1 failed" in out.stdout
    _, _, trials = trial_runs(tmp_path)
    by_height = {r.data.params["height"]: r for r in trials}
    assert sorted(by_height) == ["-1.0", "1.0", "2.0"], "every trial has its run"
    assert (
        by_height["1.0"].data.metrics["worker_pid"] == by_height["2.0"].data.metrics["worker_pid"]
    )
    refused = by_height["-1.0"]
    assert refused.info.status == "FAILED"
    assert refused.data.tags["tuner.error"] == "ValueError: height must be positive"
    assert "failed before its first result: ValueError: height must be positive" in out.stdout


@pytest.mark.e2e
def test_a_class_trainable_without_the_metric_fails_with_its_keys(tmp_path: Path) -> None:
    sweep = class_sweep(tmp_path, "WrongKey", [1.0])
    out = run_cli("run", sweep.name, cwd=tmp_path, timeout=300)
    assert out.returncode == 1
    reason = "a result without the sweep's metric 'episode_reward_mean' (it reported: reward)"
    assert reason in out.stdout and reason in out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    _, _, [trial] = trial_runs(tmp_path)
    assert trial.info.status == "FAILED" and reason in trial.data.tags["tuner.error"]


# --- when a trial ends ------------------------------------------------------------------

BASE_SPEC = {"name": "s", "trainable": "mod:fit", "metric": "loss", "mode": "min"}
X_PARAM = {"params": {"x": {"type": "float", "low": 0.0, "high": 1.0}}}


def test_a_threshold_is_reached_in_the_direction_of_mode() -> None:
    assert reached(0.1, 0.2, decreasing=True) and not reached(0.3, 0.2, decreasing=True)
    assert reached(0.99, 0.9, decreasing=False) and not reached(0.5, 0.9, decreasing=False)
    assert not reached(float("nan"), 0.2, decreasing=True) and not reached("x", 1, decreasing=False)
    spec = parse_spec({**BASE_SPEC, **X_PARAM, "stop": {"training_iteration": 3, "loss": 0.2}})
    [stopper] = build_stoppers(spec)
    assert isinstance(stopper, ThresholdStopper)
    assert stopper("t", {"loss": np.float32(0.1), "training_iteration": 1})
    assert stopper("t", {"loss": 0.5, "training_iteration": 3})
    assert not stopper("t", {"loss": 0.5, "training_iteration": 2})
    other = build_stoppers(parse_spec({**BASE_SPEC, **X_PARAM, "stop": {"epoch": 4}}))[0]
    assert other("t", {"epoch": 4}) and not other("t", {"epoch": 3})  # Ray's rule: >=


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"loss": float("nan")}, "stop.loss: must be a finite number, not NaN or infinity"),
        ({"loss": float("inf")}, "stop.loss: must be a finite number, not NaN or infinity"),
        ({"epoch": True}, "stop.epoch: must be a number, not true or false"),
    ],
)
def test_a_stop_rule_that_can_never_fire_is_refused(rule: dict[str, Any], problem: str) -> None:
    """`stop: {loss: .nan}` passed: no result is ever >= NaN, and since a rule was given
    the warning about open-ended fifo sweeps was not either, so a looping trainable ran on."""
    with pytest.raises(SpecError) as caught:
        parse_spec({**BASE_SPEC, **X_PARAM, "stop": rule}, "s.yaml")
    assert caught.value.line() == f"s.yaml: {problem}"


def test_stop_rules_are_checked_and_an_open_ended_fifo_sweep_is_warned_about() -> None:
    with pytest.raises(SpecError, match=r"stop.training_iteration: must be a whole number >= 1"):
        parse_spec({**BASE_SPEC, **X_PARAM, "stop": {"training_iteration": 0.5}})
    assert parse_spec({**BASE_SPEC, **X_PARAM}).warnings() == [
        "scheduler fifo and no `stop`: each trial runs until the trainable returns; "
        "if it loops, add stop: {training_iteration: N} or {METRIC: threshold}"
    ]
    assert parse_spec({**BASE_SPEC, **X_PARAM, "stop": {"loss": 0.1}}).warnings() == []
    asha = {"scheduler": {"kind": "asha", "max_t": 4}}
    assert parse_spec({**BASE_SPEC, **X_PARAM, **asha}).warnings() == []
    builtin = {**BASE_SPEC, "trainable": "builtin:regressor", "metric": "val_loss"}
    assert parse_spec({**builtin, "params": {"lr": X_PARAM["params"]["x"]}}).warnings() == []


FOREVER_CODE = """
    from ray import tune


    def fit(config):
        # Ray's examples: train until the Tuner's stop rule says otherwise.
        step = 0
        while True:
            step += 1
            tune.report({"loss": config["x"] / step})
"""


@pytest.mark.e2e
def test_stop_ends_trials_that_loop_forever(tmp_path: Path) -> None:
    sweep = write_sweep(
        tmp_path,
        FOREVER_CODE,
        metric="loss",
        mode="min",
        searcher={"kind": "grid"},
        params={"x": {"type": "grid", "values": [0.5, 0.9, 5.0]}},
        stop={"training_iteration": 6, "loss": 0.2},
    )
    validated = run_cli("validate", sweep.name, cwd=tmp_path)
    assert validated.returncode == 0 and "warning" not in validated.stderr
    out = run_cli("run", sweep.name, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "3 trials: 3 finished" in out.stdout
    client, _, trials = trial_runs(tmp_path)
    lengths = {
        r.data.params["x"]: len(client.get_metric_history(r.info.run_id, "loss")) for r in trials
    }
    # 0.5/3 <= 0.2 at the 3rd report; 0.9/5 at the 5th; 5.0 never: 6 reports.
    assert lengths == {"0.5": 3, "0.9": 5, "5.0": 6}
    assert all(r.info.status == "FINISHED" for r in trials)


# --- failing fast -----------------------------------------------------------------------

RAY_TRAIN_CODE = """
    import ray.train


    def fit(config):
        # Older Ray examples: ray.train.report inside a Tune trainable.
        for epoch in range(1, 3):
            ray.train.report({"epoch": epoch, "loss": config["x"] / epoch})
"""


def test_the_first_trials_failing_alike_trip_fail_fast() -> None:
    fail_fast = FailFast("test-key", 2)
    fail_fast.record("a", "E: bug")
    assert not fail_fast.stop_all()
    fail_fast.record("a", "E: bug")  # the same trial again: counted once
    assert not fail_fast.stop_all()
    fail_fast.record("b", "E: bug")
    assert fail_fast.stop_all() and fail_fast.tripped == "E: bug"
    assert same_failures(["E: x=1", "E: x=2"], 2) is None, "errors naming values differ"
    assert same_failures([None, "E", "E"], 2) is None, "a trial that ended well came first"
    assert same_failures(["E", "E"], 3) is None
    assert FailFast("never", None).tripped is None
    for number in range(1000):  # later trials never change the rule: none are kept
        fail_fast.record(f"later-{number}", None)
    assert fail_fast.tripped == "E: bug" and len(fail_fast._ends) == 2
    spec = {**BASE_SPEC, **X_PARAM}
    with pytest.raises(SpecError, match="fail_fast_after"):
        parse_spec({**spec, "fail_fast_after": 0})
    assert (
        parse_spec(spec).fail_fast_after == 3
        and parse_spec({**spec, "fail_fast_after": None}).fail_fast_after is None
    )


def test_an_error_reads_as_python_prints_it_and_ray_train_gets_its_hint(tmp_path: Path) -> None:
    error_file = tmp_path / "error.txt"
    error_file.write_text(
        "Traceback (most recent call last):\n  ...\n"
        "tuner.engine.user_code.MetricNotReported: a result without the sweep's metric\n"
    )
    trial = SimpleNamespace(trial_id="t", error_file=str(error_file))
    assert error_summary(trial) == "MetricNotReported: a result without the sweep's metric"
    ray_train = "DeprecationWarning: `ray.train.report` is deprecated when running in Tune"
    assert "use ray.tune.report / ray.tune.get_checkpoint" in (error_hint(ray_train) or "")
    assert error_hint("ValueError: diverged") is None


@pytest.mark.e2e
def test_ray_train_calls_fail_fast_with_one_clear_line(tmp_path: Path) -> None:
    sweep = write_sweep(
        tmp_path,
        RAY_TRAIN_CODE,
        metric="loss",
        mode="min",
        num_samples=8,
        max_concurrent_trials=1,
        fail_fast_after=2,
        params={"x": {"type": "float", "low": 0.0, "high": 1.0}},
        stop={"training_iteration": 2},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path, timeout=300)
    assert out.returncode == 1
    hint = "use ray.tune.report / ray.tune.get_checkpoint / ray.tune.Checkpoint, not ray.train.*"
    [first, *rest] = [line for line in out.stdout.splitlines() if " failed " in line]
    assert "`ray.train.report`" in first and hint in first
    assert all("the same error as trial" in line for line in rest)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith("error: sweep 'user-code' stopped: its first 2 trials all failed")
    assert hint in errors[0] and "Traceback" not in out.stdout + out.stderr
    _, parent, trials = trial_runs(tmp_path)
    assert parent.info.status == "FAILED"
    assert 2 <= len(trials) < 8, "no more trials launched after the first 2 failed alike"
    assert "RUNNING" not in {r.info.status for r in trials}


SOME_FAIL_AT_ONCE_CODE = """
    import time

    from ray import tune


    def fit(config):
        if config["x"] < 0.5:
            raise RuntimeError("bad setup")
        # 60 s: still running when fail fast stops the sweep, however slow the machine.
        for epoch in range(1, 31):
            time.sleep(2)
            tune.report({"epoch": epoch, "loss": config["x"] / epoch})
"""


@pytest.mark.e2e
def test_a_trial_running_when_fail_fast_stops_the_sweep_ends_killed(tmp_path: Path) -> None:
    sweep = write_sweep(
        tmp_path,
        SOME_FAIL_AT_ONCE_CODE,
        metric="loss",
        mode="min",
        fail_fast_after=2,
        max_concurrent_trials=2,
        searcher={"kind": "grid"},
        params={"x": {"type": "grid", "values": [0.9, 0.1, 0.2, 0.3]}},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path, timeout=300)
    assert out.returncode == 1
    stopped = "error: sweep 'user-code' stopped: its first 2 trials all failed with"
    assert f"{stopped} RuntimeError: bad setup" in out.stderr
    # Neither the never-launched trial's missing results nor the cut-off one's error
    # become Ray tracebacks or warnings: the lines above say it all.
    # A fifo sweep of a trainable of one's own with no `stop`: said once, at the start.
    assert out.stdout.splitlines()[0].startswith("warning: scheduler fifo and no `stop`")
    noise = ("Traceback", "Unhandled error", "Failed to fetch metrics")
    assert not [n for n in noise if n in out.stdout + out.stderr]
    _, parent, trials = trial_runs(tmp_path)
    assert parent.info.status == "FAILED"
    by_x = {r.data.params["x"]: r for r in trials}
    assert by_x["0.1"].info.status == by_x["0.2"].info.status == "FAILED"
    assert by_x["0.9"].info.status == "KILLED", "cut off by fail fast, not left RUNNING"
    assert by_x["0.9"].data.tags["tuner.killed"] == "fail fast"
    assert "0.3" not in by_x, "never launched"
