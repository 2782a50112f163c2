"""Training code as Ray's and Optuna's examples write it, run through the `tuner` command.

Each trainable here is written the way those examples (and the users who adapt them)
write theirs: numpy metrics, 0-based epochs, results without the metric. The tests
assert what a user sees: the command's output and exit status, and the runs in MLflow.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from mlflow import MlflowClient
from mlflow.entities import Run, RunStatus

from tests.conftest import run_cli
from tuner.engine.reported_values import plain_numbers
from tuner.engine.user_code import MetricNotReported, check_metric
from tuner.spec import parse_spec
from tuner.tracking.results import as_number, metric_points, result_step
from tuner.tracking.runs import SweepRun, artifact_root


def write_sweep(tmp_path: Path, code: str, **spec: Any) -> Path:
    """The user's module `user_train.py` and `sweep.yaml` beside it, as a user lays them out."""
    (tmp_path / "user_train.py").write_text(textwrap.dedent(code))
    full = {"name": "user-code", "trainable": "user_train:fit", **spec}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(full))
    return path


def trial_runs(tmp_path: Path, name: str = "user-code") -> tuple[MlflowClient, Run, list[Run]]:
    """(client, the sweep's parent run, its trial runs) as a user reads them back."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [r for r in runs if r.data.tags.get("tuner.role") == "sweep"]
    return client, parent, [r for r in runs if r.data.tags.get("tuner.role") == "trial"]


# --- numbers as libraries return them ---------------------------------------------------


def test_numpy_scalars_0d_arrays_and_0d_tensors_are_numbers() -> None:
    assert as_number(np.float32(0.25)) == 0.25
    assert as_number(np.int64(3)) == 3.0
    assert as_number(np.array(2.5)) == 2.5
    assert as_number(torch.tensor(0.5)) == 0.5
    assert as_number(torch.tensor(1.5, requires_grad=True) * 2) == 3.0
    assert math.isnan(as_number(np.float32("nan")) or 0.0)
    for not_a_number in (True, np.bool_(True), "0.5", None, np.array([1.0, 2.0]), torch.ones(2)):
        assert as_number(not_a_number) is None, not_a_number
    result = {"loss": np.float32(0.5), "acc": torch.tensor(0.75), "epoch": np.int64(4)}
    assert metric_points(result) == {"loss": 0.5, "acc": 0.75}
    assert result_step(result) == 4
    # An epoch that is a label leaves the step to Tune's count of reports.
    assert result_step({"epoch": "4/10", "training_iteration": 4}) == 4


def test_a_report_reaches_ray_with_plain_numbers() -> None:
    """What the worker hands Ray: Ray refuses torch tensors, the driver needs floats."""
    plain = plain_numbers(
        {"loss": torch.tensor(0.5), "val": {"acc": np.float32(0.25)}, "n": 3, "tag": "a"}
    )
    assert plain == {"loss": 0.5, "val/acc": 0.25, "n": 3, "tag": "a"}  # flat, as Ray's keys
    assert type(plain["loss"]) is float and type(plain["val/acc"]) is float
    vector = np.ones(2)  # not one number, and Ray carries it: left as it is
    assert plain_numbers({"w": vector})["w"] is vector


NUMPY_CODE = """
    import numpy as np
    import torch
    from ray import tune


    def fit(config):
        # As sklearn and torch hand them back: numpy scalars, a 0-d array, a 0-d tensor.
        rng = np.random.default_rng(0)
        for epoch in range(1, config["epochs"] + 1):
            errors = (config["x"] - 3.0) ** 2 / epoch + rng.normal(0, 0.01, 8) ** 2
            tune.report({
                "epoch": epoch,
                "loss": np.mean(errors).astype(np.float32),
                "rmse": np.sqrt(np.array(np.mean(errors))),
                "torch_loss": torch.tensor(float(np.mean(errors))),
                "batches": np.int64(8),
                "val": {"max_error": np.max(errors)},
            })
"""


@pytest.mark.e2e
def test_numpy_and_torch_values_reach_mlflow_the_table_and_the_best_trial(
    tmp_path: Path,
) -> None:
    sweep = write_sweep(
        tmp_path,
        NUMPY_CODE,
        metric="loss",
        mode="min",
        num_samples=4,
        searcher={"kind": "optuna", "seed": 0},
        scheduler={"kind": "asha", "max_t": 3, "grace_period": 1},
        params={"x": {"type": "float", "low": -5.0, "high": 5.0}},
        config={"epochs": 3},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "best trial" in out.stdout and "loss = " in out.stdout
    client, parent, trials = trial_runs(tmp_path)
    assert len(trials) == 4
    for run in trials:
        assert {"loss", "rmse", "torch_loss", "batches", "val/max_error"} <= set(run.data.metrics)
        history = client.get_metric_history(run.info.run_id, "loss")
        assert history, "every trial has its points, whatever ASHA did"
        assert [p.step for p in history] == list(range(1, len(history) + 1))
        rmse = client.get_metric_history(run.info.run_id, "rmse")
        assert [p.value for p in rmse] == pytest.approx([math.sqrt(p.value) for p in history])
    best = min(trials, key=lambda r: r.data.metrics["loss"])
    assert parent.data.tags["tuner.best_run_id"] == best.info.run_id
    assert parent.data.metrics["best_loss"] == pytest.approx(best.data.metrics["loss"])
    assert "checkpoint: none (the trainable saved none)" in out.stdout.splitlines()
    # Embedded Ray keeps token auth on, without a note on each run of how to turn it off.
    assert "Token authentication is enabled" not in out.stderr
    # The per-trial lines (no terminal here) show the score instead of a blank.
    assert "loss=" in out.stdout and "loss= " not in out.stdout


def test_a_result_is_checked_for_the_metric_as_ray_flattens_it() -> None:
    check_metric({"val": {"loss": 1.0}, "epoch": 1}, "val/loss")
    with pytest.raises(MetricNotReported, match=r"'loss' \(it reported: acc, val/loss\)$"):
        check_metric({"val": {"loss": 1.0}, "acc": 0.5}, "loss")
    with pytest.raises(MetricNotReported, match="it reported: nothing"):
        check_metric({}, "loss")


# --- steps as the examples count them ---------------------------------------------------

ZERO_BASED_CODE = """
    from ray import tune


    def fit(config):
        # Ray's and Optuna's examples count epochs from 0.
        for epoch in range(config["epochs"]):
            tune.report({"epoch": epoch, "loss": (config["x"] - 3.0) ** 2 / (epoch + 1)})
"""


@pytest.mark.e2e
def test_a_0_based_epoch_loses_no_point(tmp_path: Path) -> None:
    sweep = write_sweep(
        tmp_path,
        ZERO_BASED_CODE,
        metric="loss",
        mode="min",
        num_samples=6,
        searcher={"kind": "random", "seed": 0},
        scheduler={"kind": "asha", "max_t": 4, "grace_period": 1, "reduction_factor": 2},
        max_concurrent_trials=1,
        params={"x": {"type": "float", "low": -5.0, "high": 5.0}},
        config={"epochs": 4},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    client, _, trials = trial_runs(tmp_path)
    assert len(trials) == 6
    stopped_at_first_rung = 0
    for run in trials:
        steps = [p.step for p in client.get_metric_history(run.info.run_id, "loss")]
        assert steps == list(range(len(steps))) and steps, "every epoch from 0, once"
        if "tuner.stopped_early" in run.data.tags:
            assert run.data.tags["tuner.stopped_at_epoch"] == str(steps[-1])
            stopped_at_first_rung += steps == [0]
        else:
            assert steps == [0, 1, 2, 3]
    assert stopped_at_first_rung >= 1, "a trial ASHA stopped at once keeps its one point"


# --- results without the metric ---------------------------------------------------------

WRONG_KEY_CODE = """
    from ray import tune


    def fit(config):
        for epoch in range(1, 3):
            loss = (config["x"] - 3.0) ** 2 / epoch
            if config["x"] > 0:
                tune.report({"epoch": epoch, "val_loss": loss, "acc": 0.5})  # not `loss`
            else:
                tune.report({"epoch": epoch, "loss": loss})
"""

RETURNING_CODE = """
    def fit(config):
        # Optuna's objective style: the score is returned, never reported.
        return (config["x"] - 3.0) ** 2
"""


@pytest.mark.e2e
def test_a_trial_without_the_metric_fails_with_its_keys_and_the_sweep_goes_on(
    tmp_path: Path,
) -> None:
    sweep = write_sweep(
        tmp_path,
        WRONG_KEY_CODE,
        metric="loss",
        mode="min",
        searcher={"kind": "grid"},
        params={"x": {"type": "grid", "values": [-1.0, 2.0, 4.0]}},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "3 trials: 1 finished, 2 failed" in out.stdout
    reason = "a result without the sweep's metric 'loss' (it reported: acc, epoch, val_loss)"
    failed_lines = [line for line in out.stdout.splitlines() if " failed before its first" in line]
    assert len(failed_lines) == 2
    assert sum(reason in line for line in failed_lines) == 1, "the reason once, then a reference"
    assert "Traceback" not in out.stdout + out.stderr
    _, parent, trials = trial_runs(tmp_path)
    assert parent.info.status == "FINISHED" and parent.data.tags["tuner.failed_trials"] == "2"
    assert sorted(r.info.status for r in trials) == ["FAILED", "FAILED", "FINISHED"]
    for run in trials:
        if run.info.status == "FAILED":
            assert reason in run.data.tags["tuner.error"]


@pytest.mark.e2e
def test_a_sweep_whose_trials_all_return_instead_of_reporting_stops_with_one_line(
    tmp_path: Path,
) -> None:
    sweep = write_sweep(
        tmp_path,
        RETURNING_CODE,
        metric="loss",
        mode="min",
        searcher={"kind": "grid"},
        params={"x": {"type": "grid", "values": [1.0, 2.0]}},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path)
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: sweep 'user-code': no trial finished with a value of 'loss' (2 of 2 trials "
        "failed; first: MetricNotReported: the trainable returned a float instead of "
        "reporting the sweep's metric: call ray.tune.report({'loss': value}) once per epoch)"
    ]
    failures = [line for line in out.stdout.splitlines() if " failed before its first" in line]
    assert len(failures) == 2
    assert sum("the same error as trial" in line for line in failures) == 1, "said once"
    assert "Traceback" not in out.stdout + out.stderr
    _, parent, trials = trial_runs(tmp_path)
    assert parent.info.status == "FAILED"
    assert [r.info.status for r in trials] == ["FAILED", "FAILED"], "nothing left RUNNING"


# --- where artifacts go -----------------------------------------------------------------

CHECKPOINTING_CODE = """
    import tempfile
    from pathlib import Path

    from ray import tune


    def fit(config):
        for epoch in range(1, 3):
            with tempfile.TemporaryDirectory() as d:
                Path(d, "weights.txt").write_text(str(config["x"] * epoch))
                tune.report({"epoch": epoch, "loss": abs(config["x"]) / epoch},
                            checkpoint=tune.Checkpoint.from_directory(d))
"""


@pytest.mark.e2e
def test_artifacts_go_beside_the_sqlite_store_not_into_the_working_directory(
    tmp_path: Path,
) -> None:
    work, store = tmp_path / "work", tmp_path / "store"
    work.mkdir()
    store.mkdir()
    sweep = write_sweep(
        work,
        CHECKPOINTING_CODE,
        metric="loss",
        mode="min",
        searcher={"kind": "grid"},
        params={"x": {"type": "grid", "values": [1.0, -0.5]}},
    )
    uri = f"sqlite:///{store / 'mlflow.db'}"  # an absolute path: sqlite:////...
    out = run_cli("run", sweep.name, "--tracking-uri", uri, cwd=work)
    assert out.returncode == 0, out.stderr
    location = (store / "mlartifacts" / "user-code").as_uri()
    assert f"  artifacts: {location}" in out.stdout.splitlines()
    assert not (work / "mlruns").exists() and not (work / "mlartifacts").exists()
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("user-code")
    assert experiment is not None
    parent = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.`tuner.role` = 'sweep'",
    )[0]
    best_run = parent.data.tags["tuner.best_run_id"]
    kept = store / "mlartifacts" / "user-code" / best_run / "artifacts" / "checkpoint"
    assert (kept / "weights.txt").read_text() == "-1.0"


def test_an_existing_experiment_keeps_its_artifact_location(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert artifact_root(uri) == tmp_path / "mlartifacts"
    assert artifact_root("http://127.0.0.1:5000") is None
    client = MlflowClient(uri)
    elsewhere = (tmp_path / "kept-here").as_uri()
    client.create_experiment("old", artifact_location=elsewhere)
    spec = {"trainable": "builtin:regressor", "metric": "val_loss", "mode": "min"}
    params = {"params": {"lr": {"type": "float", "low": 0.001, "high": 0.1}}}
    for name in ("old", "new"):
        sweep = SweepRun.start(parse_spec({"name": name, **spec, **params}), None, uri)
        sweep.finish(RunStatus.FINISHED)
    old = client.get_experiment_by_name("old")
    assert old is not None and old.artifact_location == elsewhere
    new = client.get_experiment_by_name("new")
    assert new is not None and new.artifact_location == (tmp_path / "mlartifacts" / "new").as_uri()


def test_silent_trainables_are_told_the_call_their_kind_reports_with() -> None:
    from tuner.engine.user_code import WORKER_REPORT, MetricNotReported, _checked_output

    with pytest.raises(MetricNotReported, match=r"call ray\.tune\.report\(\{'loss': value\}\)"):
        _checked_output(None, "loss", reported=False)
    # A multi-worker trial's per-worker function reports through Ray Train.
    said = r"call ray\.train\.report\(\{'loss': value\}\) on every worker once per epoch"
    with pytest.raises(MetricNotReported, match=said):
        _checked_output(None, "loss", reported=False, report_call=WORKER_REPORT)
