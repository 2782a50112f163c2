"""`tuner report` on a sweep some of whose trials diverged (their metric NaN or infinite
at the end): the report is drawn from the others, and says how many ended so. Optuna
refuses a NaN value, and one such trial used to cost the whole report a traceback; an
infinite one (kept by MLflow as 1.8e308) cost the parallel coordinates and importances."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli

pytestmark = pytest.mark.e2e

SWEEP = {
    "name": "diverged-sweep",
    "trainable": "tests.trainables:diverges",
    # Several objectives: the report's Pareto front reads the final values too.
    "objectives": [{"metric": "score", "mode": "max"}, {"metric": "size", "mode": "min"}],
    "searcher": {"kind": "grid"},
    "params": {"x": {"type": "grid", "values": [0.2, 0.4, 0.6, 0.8, 0.9]}},
    "config": {"epochs": 2},
}


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("diverged")
    (folder / "sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    done = run_cli("run", "sweep.yaml", cwd=folder)
    assert done.returncode == 0, done.stderr
    return folder


def test_a_sweep_with_a_nan_trial_gets_its_report(swept: Path) -> None:
    done = run_cli("report", "diverged-sweep", "--out", "out", cwd=swept)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "report: out/report.html (" in done.stdout
    assert "not drawn: contour: needs two searched params" in done.stdout  # only x is searched
    assert "not drawn: param_importances" not in done.stdout
    for plot in ("optimization_history", "learning_curves", "parallel_coordinate", "pareto_front"):
        assert (swept / "out" / f"{plot}.png").read_bytes().startswith(b"\x89PNG"), plot
    page = (swept / "out" / "report.html").read_text()
    assert "5 trials:\n3 finished, 1 finished with score NaN, 1 finished with score inf." in page
    # The front of the trials that scored (not the NaN or infinite ones), with both
    # objectives, best score first: every finite trial trades score for size.
    assert "<p>score (max), size (min), 5 trials:" in page
    front = page.split("<h2>Pareto front</h2>")[1].split("<h2>")[0]
    rows = front.split("<tr><td>")[1:]
    assert [row.split("</td>")[1:3] for row in rows] == [
        ["<td>1.2", "<td>0.6"],
        ["<td>0.8", "<td>0.4"],
        ["<td>0.4", "<td>0.2"],
    ]
