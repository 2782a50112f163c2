"""A sweep's plots drawn into its MLflow run by a separate, short-lived process.

Drawing reads every trial back from MLflow and plots them with matplotlib. In the
sweep's driver that cost it twice over on long sweeps (bench.scale --trials 10000):
the draw held the GIL from Tune's loop (at 2,800 trials new trials stalled ~40 s), and
the memory it took stayed with the driver after it (~100 MB at 2,800 trials, ~900 MB at
6,000): Python's allocator keeps its arenas. A child process gives all of it back when
it exits, runs beside Tune's loop rather than in it, and asks for the CPU last (nice 10)
so that the trials on the driver's node go first.

    python -m tuner.tracking.plots_process TRACKING_URI EXPERIMENT_ID PARENT_RUN_ID

prints "PLOTS<TAB>WHERE" and exits 0 once the plots are logged, or says why not on
stderr and exits 1. The child inherits the driver's environment: MLflow's credentials
and retry bounds travel with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# A draw at 10,000 trials on a loaded 2-core machine took minutes; past this one is
# stuck (a tracking server that stopped answering mid-draw) and is stopped.
DRAW_TIMEOUT_S = 900.0
# Characters of a failed child's stderr read for the line the driver logs.
STDERR_KEPT = 2000
# How much less the drawing child asks for the CPU than the trials beside it.
DRAW_NICENESS = 10


@dataclass(frozen=True)
class Drawn:
    """What one child drew: how many plots and where they are, or why none."""

    plots: int
    where: str
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def draw_in_child(
    tracking_uri: str, experiment_id: str, parent_run_id: str, timeout_s: float = DRAW_TIMEOUT_S
) -> Drawn:
    """Draw the sweep's report into its parent run from a child process and wait for it."""
    command = [sys.executable, "-m", __name__, tracking_uri, experiment_id, parent_run_id]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=_child_env(),
            # Its own session: a Ctrl-C at the terminal reaches the driver, which lets a
            # draw under way finish rather than leave half its files logged.
            start_new_session=True,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Drawn(0, "", f"the draw took over {timeout_s:g} s and was stopped")
    if done.returncode != 0:
        lines = done.stderr.strip()[-STDERR_KEPT:].splitlines()
        return Drawn(0, "", lines[-1] if lines else f"exit status {done.returncode}")
    # The last line is ours; a library may have printed before it.
    count, _, where = done.stdout.strip().rpartition("\n")[-1].partition("\t")
    if not count.isdigit():
        return Drawn(0, "", f"the drawing process said {count!r}, not how many plots")
    return Drawn(int(count), where)


def _child_env() -> dict[str, str]:
    """The driver's environment, with tuner importable as the driver imports it (a
    Ray job's working directory, a checkout, not only an installed package)."""
    package_root = str(Path(__file__).resolve().parents[2])
    paths = [package_root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m tuner.tracking.plots_process URI EXPERIMENT RUN", file=sys.stderr)
        return 2
    os.nice(DRAW_NICENESS)
    from mlflow import MlflowClient

    from tuner.tracking.client_settings import bound_mlflow_retries
    from tuner.tracking.plots_in_mlflow import log_plots

    bound_mlflow_retries()
    tracking_uri, experiment_id, parent_run_id = argv
    try:
        count, where = log_plots(MlflowClient(tracking_uri), experiment_id, parent_run_id)
    except Exception as exc:  # nothing to draw yet, or MLflow busy: the driver says so
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(f"{type(exc).__name__}: {first}", file=sys.stderr)
        return 1
    print(f"{count}\t{where}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
