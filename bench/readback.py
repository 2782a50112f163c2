"""Big sweeps read back: a sweep of many null trials tracked through `mlflow server` on
PostgreSQL (what the infra's head node runs), then what a user asks of it, each timed
as a whole command.

    python -m bench.readback                   # 10,000 trials (about 15 minutes here)
    python -m bench.readback --trials 2000
    python -m bench.readback --smoke           # 30 trials, server on SQLite

Reports the sweep itself (wall, slot-seconds per trial, the driver's memory growth per
trial after a 20-trial warm-up, the end of the sweep after its last trial: Ray's last
snapshot, closing runs, the plots), then `tuner best`, `tuner
report` and the read behind `tuner status` (a submitted sweep's trial counts: the
driver's counts on the sweep's run, and for comparison every trial's run paged in, as
for a sweep whose driver died), and checks that `tuner best` names the trial with the
best value of all the runs and that both reads count every trial.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    RESULTS,
    SLOTS,
    machine,
    python_path,
    ray_for,
    rss_mb,
    run_tuner,
    write,
)
from bench.servers import postgres_missing
from bench.stores import STORES, null_sweep

NAME = "bench-readback"
SUBMISSION = "bench-readback-submission"
STATUS_READ = (
    "import sys; from tuner.tracking.status import trial_counts; "
    "print(trial_counts(sys.argv[1], sys.argv[2], sys.argv[3]).total)"
)
# The same counts from every trial's run (what a sweep whose driver died is read with).
STATUS_PAGED_READ = (
    "import sys; from mlflow import MlflowClient; "
    "from tuner.tracking.runs import find_sweep_run; "
    "from tuner.tracking.status import counts_from_runs; "
    "client = MlflowClient(sys.argv[1]); "
    "experiment_id, parent = find_sweep_run("
    "    client, sys.argv[2], 'tuner.submission_id', sys.argv[3]); "
    "print(counts_from_runs(client, experiment_id, parent, job_ended=False).total)"
)


def command_s(args: list[str], cwd: Path) -> tuple[float, str]:
    """Wall seconds of one whole command, and what it printed."""
    started = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False, env=_env())
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} failed: {done.stderr.strip()[-800:]}")
    return seconds, done.stdout


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": python_path()}


def true_best(uri: str) -> float:
    """The best `score` over every run of the sweep, read with MLflow's own paging."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(NAME)
    assert experiment is not None
    best, token = float("-inf"), None
    while True:
        page = client.search_runs(
            [experiment.experiment_id], "tags.`tuner.role` != 'sweep'", max_results=1000,
            page_token=token,
        )  # fmt: skip
        best = max([best, *(run.data.metrics.get("score", best) for run in page)])
        token = page.token
        if not token:
            return best


def measure(trials: int, store: str) -> dict[str, Any]:
    from tuner.defaults import SUBMISSION_ID_ENV

    startup: dict[str, float] = {}
    with (
        STORES[store]() as (uri, _),
        tempfile.TemporaryDirectory(prefix="bench-readback-") as folder,
    ):
        assert uri is not None, "readback measures a tracking server"
        with ray_for(startup, "ray"):
            os.environ[SUBMISSION_ID_ENV] = SUBMISSION  # what `tuner status` finds it by
            try:
                run_tuner(null_sweep(f"{NAME}-warm-up", 20), f"{folder}/w", uri)
                warm = rss_mb()
                started = time.perf_counter()
                result = run_tuner(null_sweep(NAME, trials), folder, uri)
                grown = rss_mb() - warm
                wall = time.perf_counter() - started
                ended = time.time()
            finally:
                os.environ.pop(SUBMISSION_ID_ENV, None)
        phases = result.phases.as_dict()
        cli = [sys.executable, "-m", "tuner.cli"]
        best_s, best_out = command_s([*cli, "best", NAME, "--tracking-uri", uri, "--json"], REPO)
        report_s, _ = command_s(
            [*cli, "report", NAME, "--tracking-uri", uri, "--out", f"{folder}/report"], REPO
        )
        status_s, counted = command_s(
            [sys.executable, "-c", STATUS_READ, uri, NAME, SUBMISSION], REPO
        )
        paged_s, paged = command_s(
            [sys.executable, "-c", STATUS_PAGED_READ, uri, NAME, SUBMISSION], REPO
        )
        reported = json.loads(best_out)["value"]
        truth = true_best(uri)
    return {
        "trials": trials,
        "store": store,
        "sweep_wall_s": wall,
        "overhead_slot_s_per_trial": wall * SLOTS / trials,
        "end_of_sweep_s": ended - _last_trial_ended(result, ended),
        "driver_rss_growth_kb_per_trial": grown * 1024 / trials,
        "phases_s": phases,
        "best_s": best_s,
        "report_s": report_s,
        "status_read_s": status_s,
        "status_counted": int(counted.strip()),
        "status_paged_read_s": paged_s,
        "status_paged_counted": int(paged.strip()),
        "best_value": reported,
        "best_is_true_best": reported == truth,
    }


def _last_trial_ended(result: Any, otherwise: float) -> float:
    """When (Unix time) the sweep's last trial ended."""
    spans = {span.name: span for span in result.phases.spans}
    last = spans.get("last trial ended")
    return otherwise if last is None else float(result.phases.origin + last.start)


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    f = result["figures"]
    return [
        ("store", "trials", "sweep s", "slot-s/trial", "driver KB/trial", "end of sweep s",
         "tuner best s",
         "tuner report s", "status read s", "every run paged in s", "best is the true best"),
        (f["store"], str(f["trials"]), f"{f['sweep_wall_s']:.1f}",
         f"{f['overhead_slot_s_per_trial']:.3f}",
         f"{f['driver_rss_growth_kb_per_trial']:.0f}", f"{f['end_of_sweep_s']:.1f}",
         f"{f['best_s']:.1f}", f"{f['report_s']:.1f}", f"{f['status_read_s']:.1f}",
         f"{f['status_paged_read_s']:.1f}", "yes" if f["best_is_true_best"] else "NO"),
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--smoke", action="store_true", help="30 trials, server on SQLite")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    trials = 30 if args.smoke else args.trials
    postgres = not args.smoke and not postgres_missing()
    store = "mlflow server on PostgreSQL" if postgres else "mlflow server on SQLite"
    result = {"machine": machine(), "slots": SLOTS, "figures": measure(trials, store)}
    name = "readback-smoke" if args.smoke else f"readback-n{trials}"
    return write(name, result, table(result), args.out)


if __name__ == "__main__":
    main()
