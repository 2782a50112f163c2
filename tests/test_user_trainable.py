"""A user's own training function, importable from the working directory, run by the CLI."""

from __future__ import annotations

import math
import signal
import textwrap
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import run_and_signal, run_cli

pytestmark = pytest.mark.e2e

USER_CODE = textwrap.dedent(
    '''
    import tempfile
    from pathlib import Path

    from ray import tune


    def fit(config: dict) -> None:
        """Minimizes (x - 3)^2 by 'training' for a few epochs; checkpoints every epoch."""
        start = 1
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as d:
                start = int(Path(d, "epoch").read_text()) + 1
        for epoch in range(start, config["epochs"] + 1):
            loss = (config["x"] - 3.0) ** 2 / epoch
            with tempfile.TemporaryDirectory() as d:
                Path(d, "epoch").write_text(str(epoch))
                tune.report({"epoch": epoch, "loss": loss},
                            checkpoint=tune.Checkpoint.from_directory(d))
    '''
)


def test_user_function_from_the_working_directory(tmp_path: Path) -> None:
    package = tmp_path / "my_project"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text(USER_CODE)
    spec = {
        "name": "user-fn",
        "trainable": "my_project.train:fit",
        "metric": "loss",
        "mode": "min",
        "num_samples": 4,
        "searcher": {"kind": "optuna", "sampler": "tpe", "seed": 0},
        "params": {"x": {"type": "float", "low": -10.0, "high": 10.0}},
        "config": {"epochs": 3},
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))

    assert run_cli("validate", "sweep.yaml", cwd=tmp_path).returncode == 0
    # Every default (sqlite, ./tuner_runs); --profile only adds the phase table.
    out = run_cli("run", "sweep.yaml", "--profile", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert_phase_table(out.stderr)

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("user-fn")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    trials = [r for r in runs if r.data.tags.get("tuner.role") == "trial"]
    assert len(trials) == 4
    for run in trials:
        x = float(run.data.params["x"])
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [m.step for m in history] == [1, 2, 3]
        assert history[-1].value == pytest.approx((x - 3.0) ** 2 / 3)
    best = min(trials, key=lambda r: r.data.metrics["loss"])
    parent = next(r for r in runs if r.data.tags.get("tuner.role") == "sweep")
    assert parent.data.tags["tuner.best_run_id"] == best.info.run_id
    # No built-in exporter for user code: the raw checkpoint is the logged artifact.
    assert [a.path for a in client.list_artifacts(best.info.run_id, "checkpoint")] == [
        "checkpoint/epoch"
    ]
    assert (tmp_path / "tuner_runs" / "user-fn").is_dir()


PHASES_IN_ORDER = [
    "command started",
    "sweep file checked",
    "imports (ray, mlflow)",
    "preflight",
    "ray start",
    "first trial started",
    "first result",
    "last trial ended",
    "tracking flush",
    "checkpoints pruned",
    "summary printed",
    "ray shutdown",
]


def assert_phase_table(stderr: str) -> None:
    """`--profile`: each phase once, in the order a sweep goes through them, with times
    since the process started; the summary comes before Ray's shutdown, not after it."""
    lines = stderr[stderr.index("phase ") :].splitlines()[1:]
    rows = {line[:30].strip(): line[30:].split() for line in lines if line.strip()}
    assert set(PHASES_IN_ORDER) <= set(rows) <= {*PHASES_IN_ORDER, "mlflow parent run",
        "trainable import", "fit", "best model export", *EXPORT_STEPS}  # fmt: skip
    at = [float(rows[name][0]) for name in PHASES_IN_ORDER]
    assert at == sorted(at), list(zip(PHASES_IN_ORDER, at, strict=True))
    fit_at, fit_took = (float(value) for value in rows["fit"])
    assert fit_at <= float(rows["first trial started"][0])
    assert fit_at + fit_took >= float(rows["last trial ended"][0])
    # The export's steps, indented under it, fall within it (to the printed 0.01 s).
    if "best model export" in rows:
        export_at, export_took = (float(value) for value in rows["best model export"])
        for step in EXPORT_STEPS:
            step_at, step_took = (float(value) for value in rows[step])
            assert export_at - 0.01 <= step_at
            assert step_at + step_took <= export_at + export_took + 0.02


EXPORT_STEPS = ("checkpoint fetched", "model logged", "test score")


FAILING_CODE = textwrap.dedent(
    """
    from ray import tune


    def fit(config: dict) -> None:
        tune.report({"epoch": 1, "loss": abs(config["x"]), "grad_norm": float("nan")})
        if config["x"] > 0:
            raise ValueError(f"diverged at x={config['x']}")
        tune.report({"epoch": 2, "loss": abs(config["x"]) / 2})
    """
)


def failing_sweep(tmp_path: Path, values: list[float]) -> Path:
    (tmp_path / "failing.py").write_text(FAILING_CODE)
    spec = {
        "name": "failing",
        "trainable": "failing:fit",
        "metric": "loss",
        "mode": "min",
        "searcher": {"kind": "grid"},
        "params": {"x": {"type": "grid", "values": values}},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def sweep_runs(tmp_path: Path) -> tuple[list, list]:  # type: ignore[type-arg]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("failing")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("tuner.role") == "sweep"]
    trials = [r for r in runs if r.data.tags.get("tuner.role") == "trial"]
    return parents, trials


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    out = run_cli("run", str(failing_sweep(tmp_path, [-1.0, 2.0])), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "2 trials: 1 finished, 1 failed" in out.stdout
    [parent], trials = sweep_runs(tmp_path)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["tuner.failed_trials"] == "1"
    by_status = {run.info.status: run for run in trials}
    assert sorted(by_status) == ["FAILED", "FINISHED"]
    assert by_status["FAILED"].data.tags["tuner.error"] == "ValueError: diverged at x=2.0"
    assert by_status["FAILED"].data.metrics["loss"] == 2.0  # what it reported before failing
    # A NaN is a point a user needs to see, not one to drop.
    assert math.isnan(by_status["FINISHED"].data.metrics["grad_norm"])


def test_a_sweep_whose_trials_all_fail_exits_1_with_one_line(tmp_path: Path) -> None:
    out = run_cli("run", str(failing_sweep(tmp_path, [1.0, 2.0])), cwd=tmp_path)
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    [error] = errors
    assert error.startswith(
        "error: sweep 'failing': no trial finished with a value of 'loss' (2 of 2 trials failed; "
        "first: ValueError: diverged at x="
    )
    [parent], trials = sweep_runs(tmp_path)
    assert parent.info.status == "FAILED"
    assert {run.info.status for run in trials} == {"FAILED"}


SLOW_CODE = textwrap.dedent(
    """
    import tempfile
    import time
    from pathlib import Path

    from ray import tune


    def fit(config: dict) -> None:
        epoch = 0
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as d:
                epoch = int(Path(d, "epoch").read_text())
        while epoch < config["epochs"]:
            epoch += 1
            Path(config["started"]).touch()  # tells the test a trial is mid-run
            time.sleep(0.2)
            with tempfile.TemporaryDirectory() as d:
                Path(d, "epoch").write_text(str(epoch))
                tune.report({"epoch": epoch, "loss": 1.0 / epoch},
                            checkpoint=tune.Checkpoint.from_directory(d))
    """
)


def test_ctrl_c_stops_the_sweep_and_resume_finishes_it(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(SLOW_CODE)
    started = tmp_path / "started"
    spec = {
        "name": "slow",
        "trainable": "slow:fit",
        "metric": "loss",
        "mode": "min",
        "num_samples": 4,
        "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "config": {"started": str(started), "epochs": 12},
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    done = run_and_signal(tmp_path, started, signal.SIGINT, "run", "sweep.yaml")
    stderr = done.stderr
    assert done.returncode == 130
    assert "error: interrupted; Ray Tune saved the sweep's state in" in stderr
    assert "`tuner resume slow` continues it" in stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("slow")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert {r.info.status for r in runs} == {"KILLED"}, "no run may be left RUNNING"
    cut_off = [r for r in runs if r.data.tags.get("tuner.killed") == "interrupted"]
    # A trial started just before Ctrl-C has a run but may have no result yet.
    losses = [r.data.metrics["loss"] for r in cut_off if "loss" in r.data.metrics]
    assert losses and all(loss > 0 for loss in losses), "a cut-off run keeps its results"

    resumed = run_cli("resume", "slow", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "4 trials: 4 finished" in resumed.stdout
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 5, "the same parent and trial runs, continued"
    assert {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        assert "tuner.killed" not in run.data.tags
        if run.data.tags["tuner.role"] == "trial":
            steps = [p.step for p in client.get_metric_history(run.info.run_id, "loss")]
            assert sorted(steps) == list(range(1, 13)), "every epoch logged once"

    again = run_cli("resume", "slow", cwd=tmp_path)
    assert again.returncode == 1
    assert "already finished" in again.stderr
