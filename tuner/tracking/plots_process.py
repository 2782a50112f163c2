"""A sweep's plots drawn into its MLflow run by a separate, short-lived process.

Drawing reads every trial back from MLflow and plots them with matplotlib. In the
sweep's driver that cost it twice over on long sweeps (bench.scale --trials 10000):
the draw held the GIL from Tune's loop (at 2,800 trials new trials stalled ~40 s), and
the memory it took stayed with the driver after it (~100 MB at 2,800 trials, ~900 MB at
6,000): Python's allocator keeps its arenas. A child process gives all of it back when
it exits, runs beside Tune's loop rather than in it, and asks for the CPU last (nice 10)
so that the trials on the driver's node go first.

    python -m tuner.tracking.plots_process TRACKING_URI EXPERIMENT_ID PARENT_RUN_ID

prints "PLOTS<TAB>WHERE<TAB>SECONDS" and exits 0 once the plots are logged (SECONDS:
the draw's own time, without the child's start and imports, by which the driver paces
its draws), or says why not on stderr and exits 1. The child inherits the driver's
environment: MLflow's credentials and retry bounds travel with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
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
    """What one child drew: how many plots, where they are and how long drawing them
    took, or why none."""

    plots: int
    where: str
    seconds: float = 0.0
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
        return Drawn(0, "", error=f"the draw took over {timeout_s:g} s and was stopped")
    if done.returncode != 0:
        lines = done.stderr.strip()[-STDERR_KEPT:].splitlines()
        return Drawn(0, "", error=lines[-1] if lines else f"exit status {done.returncode}")
    # The last line is ours; a library may have printed before it.
    last_line = done.stdout.strip().rpartition("\n")[-1]
    count, where, seconds = [*last_line.split("\t"), "", ""][:3]
    try:
        return Drawn(int(count), where, float(seconds))
    except ValueError:
        return Drawn(0, "", error=f"the drawing process said {count!r}, not how many plots")


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
    # Imported before the clock starts: the report's modules (matplotlib, Optuna's fANOVA,
    # scikit-learn) take seconds to import on a busy machine, whatever the sweep's size.
    import optuna.importance  # noqa: F401
    from mlflow import MlflowClient

    import tuner.tracking.report  # noqa: F401
    from tuner.tracking.client_settings import bound_mlflow_retries
    from tuner.tracking.plots_in_mlflow import log_plots

    bound_mlflow_retries()
    tracking_uri, experiment_id, parent_run_id = argv
    started = time.monotonic()
    try:
        count, where = log_plots(MlflowClient(tracking_uri), experiment_id, parent_run_id)
    except Exception as exc:  # nothing to draw yet, or MLflow busy: the driver says so
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(f"{type(exc).__name__}: {first}", file=sys.stderr)
        return 1
    print(f"{count}\t{where}\t{time.monotonic() - started:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
