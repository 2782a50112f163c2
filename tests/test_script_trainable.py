"""A trainable module written as a script, with `argparse` at module level, run through
the `tuner` command: its parser read tuner's arguments (`run sweep.yaml`) and exited,
printing the script's own usage, and in the Ray workers it read Ray's and the workers
died ("The actor is dead"), failing every trial. So it was for a function, a class
`tune.Trainable` and a function run on several workers alike."""

from __future__ import annotations

import pickle
import sys
import textwrap
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
import yaml

from tests.conftest import run_cli
from tests.test_user_code import trial_runs
from tuner.engine.script_args import ByName, import_user_module, imported_first

SCRIPT = """
    import argparse

    import ray.train
    from ray import tune

    from .scales import SCALE  # a sibling module of the user's package

    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    {extra}
    args = parser.parse_args()
"""

# The trainable of each kind, reporting the same losses: SCALE * x / epoch.
TRAINABLES = {
    "function": """
        def fit(config):
            for epoch in range(1, args.epochs + 1):
                tune.report({"epoch": epoch, "loss": SCALE * config["x"] / epoch})
    """,
    "class": """
        class Fit(tune.Trainable):
            def setup(self, config):
                self.x = config["x"]

            def step(self):
                epoch = self.iteration + 1
                loss = SCALE * self.x / epoch
                return {"epoch": epoch, "loss": loss, "done": epoch == args.epochs}
    """,
    "workers": """
        def fit(config):
            for epoch in range(1, args.epochs + 1):
                ray.train.report({"epoch": epoch, "loss": SCALE * config["x"] / epoch})
    """,
}


def write_project(tmp_path: Path, extra: str = "", kind: str = "function") -> Path:
    package = tmp_path / "project"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "scales.py").write_text("SCALE = 3.0\n")
    script = textwrap.dedent(SCRIPT.format(extra=extra)) + textwrap.dedent(TRAINABLES[kind])
    (package / "train.py").write_text(script)
    spec: dict[str, Any] = {
        "name": "user-code",
        "trainable": "project.train:Fit" if kind == "class" else "project.train:fit",
        "metric": "loss",
        "mode": "min",
        "searcher": {"kind": "grid"},
        "params": {"x": {"type": "grid", "values": [1.0, 2.0]}},
    }
    if kind == "workers":
        spec["resources_per_trial"] = {"workers": 2, "cpu": 1}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "sweep.yaml"


def test_a_function_travels_by_name_and_anything_else_as_it_is() -> None:
    by_name = pickle.loads(cloudpickle.dumps(ByName(textwrap.dedent)))
    assert by_name.fn is textwrap.dedent
    closure = pickle.loads(cloudpickle.dumps(ByName(lambda config: 1)))
    assert closure.fn({}) == 1


def test_a_subclass_sent_by_value_imports_its_base_module_as_a_script_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a worker unpickles tuner's subclass of a user's class: sys.argv is Ray's."""
    (tmp_path / "argv_base.py").write_text(
        "import argparse\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.add_argument('--lr', type=float, default=0.1)\n"
        "args = parser.parse_args()\n"
        "class Base:\n"
        "    def lr(self):\n"
        "        return args.lr\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    base = import_user_module("argv_base").Base  # as the driver imports it

    def checked(cls: type) -> type:
        class Checked(imported_first(cls), cls):  # type: ignore[misc]
            pass

        return Checked

    sent = cloudpickle.dumps(checked(base))
    monkeypatch.delitem(sys.modules, "argv_base")  # as in a fresh worker
    monkeypatch.setattr(sys, "argv", ["default_worker.py", "--node-ip-address=127.0.0.1"])
    arrived = pickle.loads(sent)
    assert arrived().lr() == 0.1
    assert sys.argv[0] == "default_worker.py", "the worker's own argv is put back"


@pytest.mark.e2e
@pytest.mark.parametrize(
    # heavy with workers: two Train runs of two workers (84 s); function and class keep
    # the trial process's case in the default run.
    "kind",
    ["function", "class", pytest.param("workers", marks=pytest.mark.heavy)],
)
def test_a_module_that_parses_its_command_line_at_import_runs_with_its_defaults(
    tmp_path: Path, kind: str
) -> None:
    """In the driver, in the trial's process and (`workers`) in each Ray Train worker."""
    sweep = write_project(tmp_path, kind=kind)
    out = run_cli("run", sweep.name, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "unrecognized arguments" not in out.stderr
    assert "2 trials: 2 finished" in out.stdout
    client, parent, trials = trial_runs(tmp_path)
    assert parent.info.status == "FINISHED"
    assert sorted(run.data.metrics["loss"] for run in trials) == [1.5, 3.0]
    for run in trials:
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [p.step for p in history] == [1, 2]  # --epochs took its default


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["function", "class", "workers"])
def test_a_module_whose_parser_exits_at_import_is_refused_with_one_line(
    tmp_path: Path, kind: str
) -> None:
    """A required argument: the parser exits with status 2 when imported. Refused before
    Ray starts, with the parser's own message, not its usage block above tuner's line."""
    sweep = write_project(tmp_path, 'parser.add_argument("--data", required=True)', kind)
    for command in ("validate", "run"):
        out = run_cli(command, sweep.name, cwd=tmp_path)
        assert out.returncode == 2, out.stderr
        assert "usage:" not in out.stderr and "Traceback" not in out.stderr, out.stderr
        [line] = [line for line in out.stderr.splitlines() if line.startswith("error")]
        assert "sweep.yaml" in line and "trainable" in line
        assert "importing 'project.train': its argument parser exited (status 2)" in line
        assert "the following arguments are required: --data" in line
        assert "if __name__ == '__main__':" in line


@pytest.mark.e2e
def test_a_module_that_calls_sys_exit_at_import_is_refused_with_one_line(
    tmp_path: Path,
) -> None:
    sweep = write_project(tmp_path, "raise SystemExit(3)")
    out = run_cli("validate", sweep.name, cwd=tmp_path)
    assert out.returncode == 2
    [line] = [line for line in out.stderr.splitlines() if line.startswith("error")]
    assert "importing 'project.train' called sys.exit(3)" in line
    assert "if __name__ == '__main__':" in line


def test_a_function_of_a_scripts_main_travels_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """`__main__` in a Ray worker is Ray's own: imported by name there, the function
    of the user's script would not be found."""

    def fit(config: dict[str, int]) -> int:
        return config["x"] * 2

    fit.__module__, fit.__qualname__ = "__main__", "fit"
    main = sys.modules["__main__"]
    monkeypatch.setattr(main, "fit", fit, raising=False)
    sent = cloudpickle.dumps(ByName(fit))
    monkeypatch.delattr(main, "fit")  # as the worker's __main__ is
    arrived = pickle.loads(sent)
    assert arrived.fn({"x": 21}) == 42
