"""`tuner report` on a real sweep, as a user would run it: every plot a valid PNG, a
report.html that parses and reaches for no remote URL, and importances that name the one
param that decides the metric."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import run_cli
from tuner.tracking.plots_process import draw_in_child

pytestmark = pytest.mark.e2e

SWEEP = {
    "name": "report-sweep",
    "trainable": "tests.trainables:one_param_matters",
    "metric": "score",
    "mode": "max",
    "num_samples": 16,
    "searcher": {"kind": "optuna", "sampler": "random", "seed": 0},
    "scheduler": {"kind": "asha", "max_t": 4, "grace_period": 1, "reduction_factor": 2},
    "max_concurrent_trials": 2,
    "params": {
        "x": {"type": "float", "low": 0.0, "high": 1.0},
        "y": {"type": "float", "low": 0.0, "high": 1.0},
        "kind": {"type": "categorical", "choices": ["a", "b"]},
    },
    "config": {"epochs": 4},
}
PLOTS = [
    "optimization_history",
    "learning_curves",
    "parallel_coordinate",
    "param_importances",
    "contour",
]


class Sources(HTMLParser):
    """Every src and href in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value or "" for name, value in attrs if name in ("src", "href")]


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    (folder / "sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    # Drawn when the sweep ends, however short (a real sweep draws after 60 s of trials).
    done = run_cli("run", "sweep.yaml", cwd=folder, env={"TUNER_PLOTS_AFTER_S": "0"})
    assert done.returncode == 0, done.stderr
    (folder / "run.out").write_text(done.stdout)
    return folder


def sweep_ids(folder: Path) -> tuple[str, str, str]:
    """The tracking URI, experiment id and sweep run id of the sweep run in `folder`."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("report-sweep")
    assert experiment is not None
    (parent,) = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`tuner.role` = 'sweep'"
    )
    return uri, experiment.experiment_id, parent.info.run_id


def logged_plots(folder: Path) -> set[str]:
    uri, _, run_id = sweep_ids(folder)
    return {Path(item.path).name for item in MlflowClient(uri).list_artifacts(run_id, "plots")}


def test_a_sweep_draws_its_plots_into_its_mlflow_run_when_it_ends(swept: Path) -> None:
    line = next(x for x in (swept / "run.out").read_text().splitlines() if x.startswith("plots:"))
    assert line.startswith(f"plots: {len(PLOTS)} in the sweep's MLflow run, ")
    assert line.endswith("/plots/report.html")
    assert {f"{plot}.png" for plot in PLOTS} | {"report.html"} <= logged_plots(swept)


def test_report_log_puts_the_report_in_the_sweeps_run(swept: Path) -> None:
    done = run_cli("report", "report-sweep", "--out", "logged", "--log", cwd=swept)
    assert done.returncode == 0, done.stderr
    assert "logged to the sweep's MLflow run: " in done.stdout
    assert "report.html" in logged_plots(swept)


def test_report_draws_every_plot_and_a_self_contained_page(swept: Path) -> None:
    done = run_cli("report", "report-sweep", "--out", "out", cwd=swept)
    assert done.returncode == 0, done.stderr
    assert f"report: out/report.html ({len(PLOTS)} plots)" in done.stdout
    for plot in PLOTS:
        data = (swept / "out" / f"{plot}.png").read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), plot
        assert 10_000 < len(data) < 2_000_000, plot
    page = (swept / "out" / "report.html").read_text()
    parser = Sources()
    parser.feed(page)
    assert len(parser.links) == len(PLOTS)
    assert all(link.startswith("data:image/png;base64,") for link in parser.links)
    assert "http://" not in page and "https://" not in page


def test_importances_name_the_param_that_decides_the_metric(swept: Path) -> None:
    done = run_cli("report", "sweep.yaml", "--out", "again", cwd=swept)
    assert done.returncode == 0, done.stderr
    importances = json.loads((swept / "again" / "importances.json").read_text())
    assert set(importances) == {"x", "y", "kind"}
    assert max(importances, key=importances.__getitem__) == "x"


def test_report_of_a_sweep_that_does_not_exist_is_one_line(swept: Path) -> None:
    done = run_cli("report", "no-such-sweep", cwd=swept)
    assert done.returncode == 1
    assert done.stderr.strip() == "error: no sweep named 'no-such-sweep' in sqlite:///mlflow.db"


def test_report_out_to_a_file_or_through_one_is_one_line(swept: Path) -> None:
    done = run_cli("report", "report-sweep", "--out", "sweep.yaml", cwd=swept)
    assert (done.returncode, done.stderr.strip()) == (
        2, "error: --out: sweep.yaml is a file, not a folder"
    )  # fmt: skip
    done = run_cli("report", "report-sweep", "--out", "sweep.yaml/report", cwd=swept)
    assert (done.returncode, done.stderr.strip()) == (
        2, "error: --out: cannot write sweep.yaml/report: Not a directory"
    )  # fmt: skip


def test_best_and_report_by_file_read_back_without_importing_the_trainable(
    swept: Path,
) -> None:
    """They need only the sweep's name: they imported its trainable (its import-time code
    ran) and, from a folder where it does not import, refused the file (exit 2)."""
    elsewhere = {**SWEEP, "trainable": "not_importable_here:fit"}
    (swept / "moved.yaml").write_text(yaml.safe_dump(elsewhere))
    best = run_cli("best", "moved.yaml", cwd=swept)
    assert best.returncode == 0, best.stderr
    assert best.stdout.startswith("sweep report-sweep: best trial ")
    report = run_cli("report", "moved.yaml", "--out", "moved", cwd=swept)
    assert report.returncode == 0, report.stderr
    assert f"report: moved/report.html ({len(PLOTS)} plots)" in report.stdout


def copy_of(swept: Path, tmp_path: Path) -> tuple[Path, MlflowClient, str]:
    """The swept folder copied, to change its store; (folder, client, experiment id)."""
    folder = tmp_path / "copy"
    shutil.copytree(swept, folder)
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("report-sweep")
    assert experiment is not None
    return folder, client, experiment.experiment_id


def test_a_start_cut_off_before_its_trials_hides_no_sweep_from_report(
    swept: Path, tmp_path: Path
) -> None:
    """Ctrl-C while Ray started leaves a later sweep run with no trials: `tuner report`
    drew that one, an empty report ("no trial has finished yet")."""
    folder, client, experiment_id = copy_of(swept, tmp_path)
    cut_off = client.create_run(experiment_id, tags={"tuner.role": "sweep"})
    client.set_terminated(cut_off.info.run_id, "KILLED")
    done = run_cli("report", "report-sweep", "--out", "out", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert f"report: out/report.html ({len(PLOTS)} plots)" in done.stdout


def test_best_reads_the_sweep_that_finished_last_not_the_one_that_started_last(
    swept: Path, tmp_path: Path
) -> None:
    """Sweep A interrupted, sweep B run to its end, then A resumed to its end: `best`
    showed B, the one that started last, though A is the latest finished sweep."""
    folder, client, experiment_id = copy_of(swept, tmp_path)
    (b,) = client.search_runs([experiment_id], "tags.`tuner.role` = 'sweep'")
    assert b.info.end_time is not None
    tags = {k: v for k, v in b.data.tags.items() if k.startswith("tuner.")}
    a = client.create_run(experiment_id, start_time=b.info.start_time - 60_000, tags=tags)
    trial = client.create_run(experiment_id, tags={"tuner.role": "trial"})
    metric = tags["tuner.metric"]
    client.log_metric(trial.info.run_id, metric, 0.5)
    client.set_tag(a.info.run_id, "tuner.best_run_id", trial.info.run_id)
    client.set_terminated(a.info.run_id, "FINISHED", end_time=b.info.end_time + 60_000)
    done = run_cli("best", "report-sweep", "--json", cwd=folder)
    assert done.returncode == 0, done.stderr
    best = json.loads(done.stdout)
    assert (best["parent_run_id"], best["run_id"]) == (a.info.run_id, trial.info.run_id)


def test_a_deleted_sweep_says_so_to_run_best_and_report(swept: Path, tmp_path: Path) -> None:
    """Deleted in MLflow's UI (its trash): `tuner run` printed MLflow's traceback, `best`
    said the sweep had no finished run."""
    folder, client, experiment_id = copy_of(swept, tmp_path)
    client.delete_experiment(experiment_id)
    line = (
        f"error: MLflow experiment 'report-sweep' (id {experiment_id}) in sqlite:///mlflow.db "
        "is deleted: with MLFLOW_TRACKING_URI=sqlite:///mlflow.db, `mlflow experiments "
        f"restore -x {experiment_id}` brings it back, `mlflow gc --experiment-ids "
        f"{experiment_id}` frees the name for good"
    )
    for command in (["best", "report-sweep"], ["report", "report-sweep"], ["run", "sweep.yaml"]):
        done = run_cli(*command, cwd=folder)
        assert (done.returncode, done.stderr.strip()) == (1, line), command


# Debian's chromium, headless, as the tool library's probe runs it: without the
# background-networking flags it reaches for Google's hosts at every start.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0", "--window-size=1100,3000",
]  # fmt: skip


def test_report_renders_in_a_real_browser_without_console_errors(
    swept: Path, tmp_path: Path
) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    done = run_cli("report", "report-sweep", "--out", "browsed", cwd=swept)
    assert done.returncode == 0, done.stderr
    shot = tmp_path / "page.png"
    rendered = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", (swept / "browsed" / "report.html").resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    # Chromium logs every console message of the page as INFO:CONSOLE (errors included).
    assert [line for line in rendered.stderr.splitlines() if ":CONSOLE" in line] == []
    from PIL import Image

    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(1 << 24) or []
    assert len(colours) > 50, "a blank page has a handful of colours; plots have many"


def test_a_running_sweep_refreshes_its_plots_in_mlflow(tmp_path: Path) -> None:
    spec = {
        "name": "report-sweep",
        "trainable": "tests.trainables:slow_epochs",
        "metric": "score",
        "mode": "max",
        "num_samples": 4,
        "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        # 12 s a trial, about 24 s of fit on 2 slots: the second wave runs long enough
        # for a redraw to land after the first trials finish, on a loaded machine too.
        "config": {"epochs": 60},
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    # Redrawn every 2 s while it runs; never at its end, so what MLflow holds came live.
    env = {"TUNER_PLOTS_EVERY_S": "2", "TUNER_PLOTS_AFTER_S": "100000"}
    done = run_cli("run", "sweep.yaml", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "plots: `tuner report report-sweep --log`" in done.stdout
    assert {"optimization_history.png", "report.html"} <= logged_plots(tmp_path)


# A driver with live plots on, in a process of its own so that its modules are its own:
# it waits for two draws and says which plotting modules it loaded.
LIVE_DRIVER = """
import sys, time
from tuner.engine.live_plots import LivePlots
with LivePlots(*sys.argv[1:]) as plots:
    deadline = time.monotonic() + 240
    while plots.drawn < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
loaded = sorted(m for m in ("matplotlib", "optuna.visualization", "sklearn") if m in sys.modules)
print(plots.drawn, ",".join(loaded) or "none")
"""


@pytest.mark.heavy  # two minutes of a sweep drawing its plots as it runs
def test_live_plots_are_drawn_by_a_child_process_not_the_driver(swept: Path) -> None:
    """A draw's memory (hundreds of MB at thousands of trials) goes with the child that
    drew it: the driver never loads the plotting modules."""
    uri, experiment_id, run_id = sweep_ids(swept)
    artifacts = MlflowClient(uri).get_run(run_id).info.artifact_uri
    shutil.rmtree(Path(urlparse(artifacts).path) / "plots")  # those the sweep's end drew
    assert logged_plots(swept) == set()
    driver = subprocess.run(
        [sys.executable, "-c", LIVE_DRIVER, uri, experiment_id, run_id],
        capture_output=True, text=True, timeout=300, cwd=swept,
        env={**os.environ, "TUNER_PLOTS_EVERY_S": "0.5"},
    )  # fmt: skip
    assert driver.returncode == 0, driver.stderr
    assert driver.stdout.split() == ["2", "none"]
    assert {"optimization_history.png", "report.html"} <= logged_plots(swept)


def test_a_draw_that_cannot_be_made_says_why_in_one_line(swept: Path) -> None:
    uri, experiment_id, _ = sweep_ids(swept)
    drawn = draw_in_child(uri, experiment_id, "0" * 32)
    assert not drawn.ok and drawn.plots == 0
    assert "0" * 32 in drawn.error, drawn.error
    assert "\n" not in drawn.error and "Traceback" not in drawn.error
