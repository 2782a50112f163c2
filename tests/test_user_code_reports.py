"""What user code reports and raises that MLflow or Ray take badly, run through the `tuner`
command: metric names MLflow refuses, exceptions Ray cannot copy or pickle, messages of
several lines. The same style as tests/test_user_code.py."""

from __future__ import annotations

import re
from pathlib import Path
from subprocess import CompletedProcess
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from mlflow.entities import Run

from tests.conftest import run_cli
from tests.test_user_code import trial_runs, write_sweep
from tuner.engine.reported_values import UnreportableValue
from tuner.engine.user_code import MetricNotReported, check_metric
from tuner.tracking.results import error_hint, error_summary, loggable_points

# --- metric names MLflow refuses --------------------------------------------------------

ODD_NAMES_CODE = """
    from ray import tune


    def fit(config):
        for epoch in range(1, 3):
            # torchmetrics-style names and a generated one MLflow will not take.
            tune.report({"epoch": epoch, "loss": config["x"] / epoch, "acc@1": 0.5,
                         "val/f1 macro": 0.25, "k" * 300: 1.0})
"""


def test_names_mlflow_refuses_are_left_out_once_each() -> None:
    refused: dict[str, str] = {}
    points = {"loss": 1.0, "acc@1": 0.5, "val/f1 macro": 0.25, "k" * 300: 1.0}
    assert loggable_points(points, refused) == {"loss": 1.0, "val/f1 macro": 0.25}
    assert sorted(refused) == ["acc@1", "k" * 300]
    assert "250 characters" in refused["k" * 300]
    assert loggable_points(points, refused) == {"loss": 1.0, "val/f1 macro": 0.25}


@pytest.mark.e2e
def test_a_metric_name_mlflow_refuses_loses_no_other_metric(tmp_path: Path) -> None:
    sweep = write_sweep(
        tmp_path,
        ODD_NAMES_CODE,
        metric="loss",
        mode="min",
        searcher={"kind": "grid"},
        params={"x": {"type": "grid", "values": [1.0, 2.0]}},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path)
    # It used to fail every log_batch of the trial: no metric in MLflow, exit status 1.
    assert out.returncode == 0, out.stderr
    assert "MLflow write failed" not in out.stderr
    warnings = [line for line in out.stderr.splitlines() if "is not logged to MLflow" in line]
    assert len(warnings) == 2, out.stderr  # one per name, not one per result or trial
    assert any("'acc@1'" in line for line in warnings)
    assert any("(300 characters)" in line for line in warnings)
    client, parent, trials = trial_runs(tmp_path)
    assert parent.info.status == "FINISHED"
    for run in trials:
        assert run.info.status == "FINISHED"
        assert {"loss", "val/f1 macro"} <= set(run.data.metrics)
        assert not {"acc@1", "k" * 300} & set(run.data.metrics)
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [m.step for m in history] == [1, 2]
    best = min(trials, key=lambda r: r.data.metrics["loss"])
    assert parent.data.tags["tuner.best_run_id"] == best.info.run_id


# --- what a trainable raises, and sys.exit ----------------------------------------------

RAISING_CODE = """
    import sys
    import threading

    from ray import tune


    class ApiError(Exception):
        # The common shape Ray could not rebuild: __init__ takes other arguments than args.
        def __init__(self, code, detail):
            super().__init__(f"{code}: {detail}")


    class LostConnection(Exception):
        def __init__(self, message, connection):
            super().__init__(message)
            self.connection = connection  # does not pickle


    def fit(config):
        tune.report({"epoch": 1, "loss": 1.0})
        kind = config["kind"]
        if kind == "api":
            raise ApiError(503, "service unavailable")
        if kind == "lock":
            raise LostConnection("connection reset", threading.Lock())
        if kind == "wrapped":
            try:
                raise ApiError(404, "no such bucket")
            except ApiError as error:
                raise RuntimeError("could not load the data") from error
        if kind == "lines":
            raise ValueError("shapes do not match\\n  got (3, 4)\\n  expected (4, 3)")
        if kind == "exit0":
            tune.report({"epoch": 2, "loss": 0.5})
            sys.exit(0)
        sys.exit(3)
"""


@pytest.mark.e2e
def test_what_a_trainable_raises_reaches_the_user_as_raised(tmp_path: Path) -> None:
    kinds = ["api", "lock", "wrapped", "lines", "exit0", "exit3"]
    sweep = write_sweep(
        tmp_path,
        RAISING_CODE,
        metric="loss",
        mode="min",
        searcher={"kind": "grid"},
        resources_per_trial={"cpu": 1},
        fail_fast_after=None,
        params={"kind": {"type": "grid", "values": kinds}},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "6 trials: 1 finished, 5 failed" in out.stdout
    # Ray's own traceback of an exception it could not pickle, a dead worker: gone.
    assert "isn't serializable" not in out.stderr and "Traceback" not in out.stderr
    assert "worker died" not in out.stderr + out.stdout
    expected = {
        # It was "TypeError: ApiError.__init__() missing 1 required positional argument".
        "api": "user_train.ApiError: 503: service unavailable",
        "lock": "user_train.LostConnection: connection reset",
        "wrapped": "RuntimeError: could not load the data",
        # It was "  expected (4, 3)": the message's last line, without the exception.
        "lines": "ValueError: shapes do not match",
        # It was Ray's "The actor is dead because its worker process has died".
        "exit3": "TrainableExit: the trainable called sys.exit(3)",
    }
    _, parent, trials = trial_runs(tmp_path)
    assert parent.info.status == "FINISHED"
    by_kind = {run.data.params["kind"]: run for run in trials}
    # sys.exit(0) after reporting is the end of a script that went well.
    assert by_kind["exit0"].info.status == "FINISHED"
    assert by_kind["exit0"].data.metrics["loss"] == 0.5
    for kind, line in expected.items():
        run = by_kind[kind]
        assert run.info.status == "FAILED", kind
        assert run.data.tags["tuner.error"] == line
        assert f"failed after epoch 1: {line} (traceback: " in out.stdout
    # The full traceback names the user's file and the line that raised.
    [error_file] = (tmp_path / "tuner_runs" / "user-code").glob(
        f"run-*/trial_{by_kind['api'].data.tags['tuner.trial_id']}/error.txt"
    )
    text = error_file.read_text()
    assert "user_train.py" in text and "raise ApiError(503" in text


def test_an_error_line_is_the_exception_not_the_last_line_of_its_message(tmp_path: Path) -> None:
    error_file = tmp_path / "error.txt"
    error_file.write_text(
        "Failure # 1\n"
        "Traceback (most recent call last):\n"
        '  File "/home/me/train.py", line 9, in fit\n'
        "    model.load_state_dict(state)\n"
        "           ^^^^^^^^^^^^^^^^^^^^^\n"
        "RuntimeError: Error(s) in loading state_dict for Net:\n"
        '\tMissing key(s) in state_dict: "fc.weight".\n'
        "password=hunter2\n"
    )
    trial = SimpleNamespace(trial_id="t", error_file=str(error_file))
    assert error_summary(trial) == "RuntimeError: Error(s) in loading state_dict for Net:"
    error_file.write_text(
        '  File "/home/me/train.py", line 9, in fit\n'
        "tuner.engine.user_errors.UserError: my_project.ApiError: 503: unavailable\n"
    )
    assert error_summary(trial) == "my_project.ApiError: 503: unavailable"
    error_file.write_text("The actor is dead because its worker process has died.\n")
    assert error_summary(trial) == "The actor is dead because its worker process has died."


# --- the shape of a trainable -----------------------------------------------------------


def test_an_async_trainable_is_refused_before_ray_starts(tmp_path: Path) -> None:
    sweep = write_sweep(
        tmp_path,
        """
        from ray import tune


        async def fit(config):
            tune.report({"loss": config["x"]})
        """,
        metric="loss",
        mode="min",
        params={"x": {"type": "float", "low": 0.0, "high": 1.0}},
    )
    # It used to run: every trial failed as "reported no result", Ray warned on stderr
    # that the coroutine was never awaited, and the sweep exited 1.
    out = run_cli("validate", sweep.name, cwd=tmp_path, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "error: sweep.yaml: trainable: 'user_train:fit' is an async function; Ray Tune "
        "calls a trainable without awaiting it: make it a plain def (run async parts "
        "inside with asyncio.run)"
    )


# --- a metric that is not a number ------------------------------------------------------


def test_the_metric_must_be_one_number() -> None:
    for number in (1, 0.5, float("nan"), np.float32(0.5), np.array(2.0), torch.tensor(0.5)):
        check_metric({"loss": number}, "loss")
    check_metric({"val": {"loss": np.float64(1.0)}}, "val/loss")
    for value, says in [
        ("0.318", "a str ('0.318')"),
        (None, "None"),
        (True, "a bool (True)"),
        ([1.0, 2.0], "a list ([1.0, 2.0])"),
    ]:
        with pytest.raises(MetricNotReported, match=re.escape(f"a result has {says}")):
            check_metric({"loss": value, "epoch": 1}, "loss")
    shape = re.escape("'loss' is a torch tensor of shape (2,)")
    with pytest.raises(UnreportableValue, match=shape):
        check_metric({"loss": torch.ones(2), "epoch": 1}, "loss")


def test_each_objective_is_a_metric_every_result_holds() -> None:
    check_metric({"acc": 0.9, "latency": 1.5, "epoch": 1}, ("acc", "latency"))
    with pytest.raises(MetricNotReported, match=re.escape("metric 'latency' (it reported: acc")):
        check_metric({"acc": 0.9, "epoch": 1}, ("acc", "latency"))


MISSING_OBJECTIVE_CODE = """
    from ray import tune


    def fit(config):
        for epoch in range(1, 3):
            result = {"epoch": epoch, "acc": config["x"] * epoch / 2}
            if config["x"] < 0.5:  # a latency measured only on some path of the code
                result["latency"] = 1.0 + config["x"]
            tune.report(result)
"""


@pytest.mark.e2e
def test_a_trial_without_one_objective_fails_instead_of_leaving_the_front_unsaid(
    tmp_path: Path,
) -> None:
    """The trial with the best accuracy never reported latency: it ran to its end,
    FINISHED, and was left out of the Pareto front and of "best on the first
    objective" without a word."""
    sweep = write_sweep(
        tmp_path,
        MISSING_OBJECTIVE_CODE,
        objectives=[{"metric": "acc", "mode": "max"}, {"metric": "latency", "mode": "min"}],
        searcher={"kind": "grid"},
        resources_per_trial={"cpu": 1},
        params={"x": {"type": "grid", "values": [0.2, 0.9]}},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "2 trials: 1 finished, 1 failed" in out.stdout
    line = "MetricNotReported: a result without the sweep's metric 'latency' (it reported: "
    assert f"failed before its first result: {line}acc, epoch)" in out.stdout
    _, _, trials = trial_runs(tmp_path)
    by_x = {run.data.params["x"]: run.info.status for run in trials}
    assert by_x == {"0.2": "FINISHED", "0.9": "FAILED"}


STRING_METRIC_CODE = """
    from ray import tune


    def fit(config):
        for epoch in range(1, 4):
            loss = config["x"] / epoch
            # A formatted value, as a log line would have it, in one trial.
            tune.report({"epoch": epoch, "loss": f"{loss:.3f}" if config["x"] > 2 else loss})
"""


def run_with_x3_failing(
    tmp_path: Path, code: str
) -> tuple[CompletedProcess[str], MlflowClient, dict[str, Run]]:
    """`code` run as a grid sweep of two trials, x=1.0 and x=3.0, under ASHA, where it
    fails the trial of x=3.0: the sweep goes on to its end, exit status 0 and no
    traceback, that trial FAILED and the other FINISHED in MLflow. (the output, the
    MLflow client, the trial runs by x)."""
    sweep = write_sweep(
        tmp_path,
        code,
        metric="loss",
        mode="min",
        searcher={"kind": "grid"},
        scheduler={"kind": "asha", "max_t": 3, "grace_period": 1, "reduction_factor": 2},
        resources_per_trial={"cpu": 1},
        params={"x": {"type": "grid", "values": [1.0, 3.0]}},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    client, parent, trials = trial_runs(tmp_path)
    assert parent.info.status == "FINISHED"
    by_x = {run.data.params["x"]: run for run in trials}
    assert by_x["1.0"].info.status == "FINISHED"
    assert by_x["3.0"].info.status == "FAILED"
    return out, client, by_x


@pytest.mark.e2e
def test_a_metric_that_is_no_number_fails_its_trial_not_the_sweep(tmp_path: Path) -> None:
    # It used to end the sweep with Ray's 111-line TuneError from ASHA's arithmetic on a
    # str, exit status 1, and both trials RUNNING in MLflow.
    out, _, by_x = run_with_x3_failing(tmp_path, STRING_METRIC_CODE)
    line = "MetricNotReported: the sweep's metric 'loss' must be a number; a result has a str"
    assert f"failed before its first result: {line} ('3.000')" in out.stdout
    assert by_x["3.0"].data.tags["tuner.error"] == f"{line} ('3.000')"


GENERATOR_CODE = """
    def fit(config):
        # Ray's older examples yield their results instead of reporting them.
        for epoch in range(3):
            if config["x"] > 2:
                yield {"epoch": epoch, "accuracy": 0.5}
            else:
                yield {"epoch": epoch, "loss": config["x"] / (epoch + 1)}
"""


@pytest.mark.e2e
def test_a_generators_results_are_checked_as_reported_ones(tmp_path: Path) -> None:
    # It used to end the sweep with Ray's traceback from the driver, exit status 1.
    out, client, by_x = run_with_x3_failing(tmp_path, GENERATOR_CODE)
    line = "MetricNotReported: a result without the sweep's metric 'loss' (it reported: "
    assert f"failed before its first result: {line}accuracy, epoch)" in out.stdout
    history = client.get_metric_history(by_x["1.0"].info.run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2]


@pytest.mark.parametrize(
    ("trainable", "line"),
    [
        # Python looked for a submodule `py` of a package `user_train`.
        ("user_train.py:fit", "'user_train.py:fit' names a file; name its module as Python "
         "imports it from the folder you run tuner in: 'user_train:fit'"),
        # These met a regular expression: "String should match pattern '^(builtin:...'".
        ("./src/user_train.py:fit", "'./src/user_train.py:fit' names a file; name its module "
         "as Python imports it from the folder you run tuner in: 'src.user_train:fit'"),
        ("user_train", "'user_train' is neither 'package.module:function' nor 'builtin:NAME'"),
    ],
)  # fmt: skip
def test_a_trainable_named_by_its_file_is_told_its_module_name(
    tmp_path: Path, trainable: str, line: str
) -> None:
    sweep = write_sweep(
        tmp_path,
        "def fit(config):\n    pass\n",
        metric="loss",
        mode="min",
        stop={"training_iteration": 2},
        params={"x": {"type": "float", "low": 0.0, "high": 1.0}},
    )
    text = sweep.read_text().replace("trainable: user_train:fit", f"trainable: {trainable}")
    sweep.write_text(text)
    out = run_cli("validate", sweep.name, cwd=tmp_path, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: sweep.yaml: trainable: {line}"


# --- a class Trainable that declines a reset --------------------------------------------

DECLINING_CODE = """
    import os

    from ray import tune


    class Declining(tune.Trainable):
        # Ray's rule: reset_config returns False when this object cannot take the new
        # config (here: another width), asking for a fresh worker.
        def setup(self, config):
            self.width, self.timestep = config["width"], 0

        def step(self):
            self.timestep += 1
            return {"loss": self.width / self.timestep, "worker_pid": os.getpid(),
                    "setup_width": self.width}

        def reset_config(self, new_config):
            if new_config["width"] != self.width:
                return False
            self.timestep = 0
            return True
"""


@pytest.mark.e2e
def test_a_class_whose_reset_config_declines_runs_each_trial_afresh(tmp_path: Path) -> None:
    sweep = write_sweep(
        tmp_path,
        DECLINING_CODE,
        trainable="user_train:Declining",
        metric="loss",
        mode="min",
        searcher={"kind": "grid"},
        max_concurrent_trials=1,
        stop={"training_iteration": 2},
        params={"width": {"type": "grid", "values": [1.0, 2.0, 3.0]}},
    )
    # It used to hang: Ray logged "Could not re-use actor" and left the trial PENDING.
    out = run_cli("run", sweep.name, cwd=tmp_path, timeout=240)
    assert out.returncode == 0, out.stderr
    assert "3 trials: 3 finished, 0 failed" in out.stdout
    assert "Could not re-use actor" not in out.stderr
    _, _, trials = trial_runs(tmp_path)
    assert len({run.data.metrics["worker_pid"] for run in trials}) == 1, "one worker reused"
    for run in trials:
        assert run.info.status == "FINISHED"
        # Set up with its own config, counting its own steps from 1.
        assert run.data.metrics["setup_width"] == float(run.data.params["width"])
        assert run.data.metrics["loss"] == float(run.data.params["width"]) / 2


# --- an error that quotes a secret ------------------------------------------------------

LEAKING_CODE = """
    from ray import tune


    class HTTPError(Exception):
        pass


    def fit(config):
        tune.report({"epoch": 1, "loss": 1.0})
        url = f"https://hub.example/api?token={config['api_token']}"
        try:
            raise HTTPError(f"401 Unauthorized for url: {url}")
        except HTTPError as error:
            raise RuntimeError(f"login failed with {config['db_password']}") from error
"""

LITERAL_SECRET, ENV_SECRET = "tok-1d2c3b4a-literal", "pw-9f8e7d-from-env"


@pytest.mark.e2e
def test_an_error_quoting_a_secret_is_stored_without_it(tmp_path: Path) -> None:
    sweep = write_sweep(
        tmp_path,
        LEAKING_CODE,
        metric="loss",
        mode="min",
        searcher={"kind": "grid"},
        params={"x": {"type": "grid", "values": [1.0]}},
        config={"api_token": LITERAL_SECRET, "db_password": "${env:TEST_DB_PASSWORD}"},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path, env={"TEST_DB_PASSWORD": ENV_SECRET})
    # The trial's error used to carry both secrets into MLflow's tag, the console, and
    # the storage's error.txt and error.pkl: docs/secrets.md promises none of them.
    assert out.returncode == 1
    line = "RuntimeError: login failed with <secret>"
    assert f"failed after epoch 1: {line} (traceback: " in out.stdout
    _, _, [trial] = trial_runs(tmp_path)
    assert trial.data.tags["tuner.error"] == line
    stored = [tmp_path / "mlflow.db", *(tmp_path / "tuner_runs").rglob("*")]
    for text in [out.stdout, out.stderr, *(p.read_bytes().decode("latin-1") for p in stored
                                           if p.is_file())]:  # fmt: skip
        assert LITERAL_SECRET not in text and ENV_SECRET not in text
    [error_file] = (tmp_path / "tuner_runs").rglob("error.txt")
    text = error_file.read_text()
    # Still what happened, and where: the chain's lines, the user's file and line.
    assert "caused by user_train.HTTPError: 401 Unauthorized for url: " in text
    assert "token=<secret>" in text and "user_train.py" in text


# --- a file relative to where tuner ran -------------------------------------------------

RELATIVE_FILE_CODE = """
    from pathlib import Path

    from ray import tune


    def fit(config):
        # Beside sweep.yaml, where `tuner run` started: not the trial's working directory.
        scale = float(Path("scale.txt").read_text())
        tune.report({"epoch": 1, "loss": scale * config["x"]})
"""


@pytest.mark.e2e
def test_a_file_opened_relative_to_where_tuner_ran_gets_a_hint(tmp_path: Path) -> None:
    sweep = write_sweep(
        tmp_path,
        RELATIVE_FILE_CODE,
        metric="loss",
        mode="min",
        searcher={"kind": "grid"},
        params={"x": {"type": "grid", "values": [1.0]}},
    )
    (tmp_path / "scale.txt").write_text("2.0")
    out = run_cli("run", sweep.name, cwd=tmp_path)
    assert out.returncode == 1
    assert (
        "failed before its first result: FileNotFoundError: [Errno 2] No such file or "
        "directory: 'scale.txt' -- each trial runs in its own working directory, not the "
        "one tuner was started in: open the file by its absolute path (given in the "
        "sweep's config, say) (traceback: "
    ) in out.stdout
    assert error_hint("FileNotFoundError: [Errno 2] No such file or directory: '/d/x'") is None
