"""The benchmarks' smoke modes keep working. Their figures are measurements, reported in
bench/README.md, never asserted here: timed tests flake, benchmarks measure.

These are `bench` tests: `python -m pytest -m bench` runs them (about 14 minutes on 2
cores), before a benchmark's figures are taken and after a change to bench/; the default
run leaves them out (pyproject.toml), as it keeps CI inside its time. Their pure parts
are in test_bench_parts.py, which every run has."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import (
    checkpoints,
    ddp,
    ddp_split,
    digits,
    endtoend,
    gpu,
    overhead,
    pbt,
    rates,
    readback,
    scale,
    search,
    search_conditional,
    search_multiobjective,
    server_capacity,
    stop_when,
    stores,
    tpe,
    tracking,
    trial_start,
)
from bench.common import SHARED_RAY_ENV

pytestmark = pytest.mark.bench


@pytest.fixture(autouse=True, scope="module")
def one_ray_for_every_system(ray_session: None) -> Iterator[None]:
    """Smoke runs check that a benchmark still works, not how fast it is: its systems share
    the module's Ray instead of starting one each (bench.common.ray_for)."""
    os.environ[SHARED_RAY_ENV] = "1"
    yield
    del os.environ[SHARED_RAY_ENV]


def test_overhead_benchmark_runs_every_system(tmp_path: Path) -> None:
    result = json.loads(overhead.main(["--smoke", "--out", str(tmp_path)]).read_text())
    assert set(result["wall_s"]) == {
        "optuna (serial)",
        "optuna (2 workers)",
        "ray tune (defaults)",
        "ray tune (reuse_actors)",
        "tuner",
    }
    assert len(result["per_trial_compute_s"]) == result["trials"] == 4
    assert result["ideal_s"] > 0 and all(v > 0 for v in result["wall_s"].values())
    assert set(result["ray_startup_s"]) == {
        "ray tune (defaults)",
        "ray tune (reuse_actors)",
        "tuner",
    }
    assert (tmp_path / "overhead-smoke.md").read_text().startswith("| system | wall s |")


def test_scale_benchmark_reports_rate_overhead_and_memory(tmp_path: Path) -> None:
    result = json.loads(scale.main(["--smoke", "--out", str(tmp_path)]).read_text())
    assert result["trials"] == 20
    for system in ("tuner", "ray tune (reuse_actors)"):
        assert result["wall_s"][system] > 0
        assert result["driver_rss"][system]["end_mb"] > 0
        # Memory through the sweep, so that growth that stops shows as such.
        points = result["driver_rss"][system]["at"]
        assert [point["share"] for point in points] == [0.25, 0.5, 0.75, 1.0]
        assert points[-1]["trials"] == 20 and all(point["rss_mb"] > 0 for point in points)
        assert result["driver_cpu_s"][system] > 0


def test_tpe_benchmark_times_both_samplers(tmp_path: Path) -> None:
    result = json.loads(tpe.main(["--smoke", "--out", str(tmp_path)]).read_text())
    assert set(result["ms_per_suggestion"]) == {"tpe (optuna's own)", "tpe, history: 1000"}
    for by_trials in result["ms_per_suggestion"].values():
        assert set(by_trials) == {"100", "300"} and all(v > 0 for v in by_trials.values())


def test_stores_benchmark_runs_a_short_and_a_long_sweep_through_a_server(tmp_path: Path) -> None:
    result = json.loads(stores.main(["--smoke", "--out", str(tmp_path)]).read_text())
    assert result["trials"] == {"short": 2, "long": 6}
    figures = result["stores"]["mlflow server on SQLite"]
    assert figures["wall_s"]["short"] > 0 and figures["wall_s"]["long"] > 0
    assert figures["driver_cpu_s_long"] > 0
    # The server's processes did the long sweep's 6 trials' 18 requests: CPU of their own.
    assert list(figures["store_cpu_ms_per_trial_long"]) == ["server"]
    assert figures["store_cpu_ms_per_trial_long"]["server"] > 0
    assert (tmp_path / "stores-smoke.md").read_text().startswith("| tracking store |")


def test_readback_benchmark_reads_a_sweep_back_through_a_server(tmp_path: Path) -> None:
    result = json.loads(readback.main(["--smoke", "--out", str(tmp_path)]).read_text())
    figures = result["figures"]
    assert figures["store"] == "mlflow server on SQLite" and figures["trials"] == 30
    assert figures["status_counted"] == figures["status_paged_counted"] == 30
    assert figures["best_is_true_best"] is True
    assert min(figures[key] for key in ("best_s", "report_s", "status_read_s")) > 0
    assert (tmp_path / "readback-smoke.md").read_text().startswith("| store |")


def test_gpu_benchmark_runs_its_cpu_parts_without_a_gpu(tmp_path: Path) -> None:
    result = json.loads(gpu.main(["--smoke", "--out", str(tmp_path)]).read_text())
    (run,) = result["runs"]
    if result["gpus"] == 0:
        assert result["skipped"].startswith("no CUDA GPU here")
        assert run["share"] == 0.0 and run["gpu_utilization_mean"] is None
    assert 0 < run["start_to_first_result_s"] < run["wall_s"] + 60
    assert run["last_trial_to_end_s"] >= 0
    assert run["trials_per_hour"] > 0


def test_rates_benchmark_writes_and_reads_back_every_point(tmp_path: Path) -> None:
    result = json.loads(rates.main(["--smoke", "--out", str(tmp_path)]).read_text())
    assert set(result["shapes"]) == set(rates.SHAPES)
    for figures in result["shapes"].values():
        assert figures["results"] > 0
        assert figures["lost"] == figures["doubled"] == 0
        assert figures["points_read_back"] == figures["results"]
        assert 0 < figures["lag_p50_s"] <= figures["lag_max_s"]
        # The server did the writing, run by run.
        assert figures["store_cpu_cores"] > 0
        assert figures["run_writes_per_s"] > 0


def test_server_capacity_benchmark_costs_a_request_in_the_servers_cpu(tmp_path: Path) -> None:
    result = json.loads(server_capacity.main(["--smoke", "--out", str(tmp_path)]).read_text())
    figures = result["figures"]
    assert len(figures) == len(server_capacity.PAYLOADS)
    for measured in figures.values():
        assert measured["requests"] > 0
        # The server's own processes did the work, not the clients alone.
        assert measured["store_cpu_ms_per_request"] > 0
        assert measured["latency_p50_ms"] <= measured["latency_p95_ms"]


def test_tracking_benchmark_compares_mlflow_on_and_off(tmp_path: Path) -> None:
    result = json.loads(tracking.main(["--smoke", "--out", str(tmp_path)]).read_text())
    assert set(result["median_wall_s"]) == {
        "tuner, MLflow on",
        "tuner, MLflow off",
        "ray tune + MLflowLoggerCallback",
        "ray tune, no tracking",
    }
    assert all(len(runs) == 1 and runs[0] > 0 for runs in result["wall_s"].values())
    assert result["tuner_tracking_cost"] > -1


def test_search_benchmark_traces_regret_against_cost(tmp_path: Path) -> None:
    result = json.loads(search.main(["--smoke", "--out", str(tmp_path)]).read_text())
    assert result["budget_epochs"] == 4 * search.MAX_T
    assert set(result["systems"]) == set(search.SYSTEMS)
    for figures in result["systems"].values():
        per_seed = figures["regret_per_seed"][str(result["budget_epochs"])]
        assert len(per_seed) == 2
        # Regret is measured against the true optimum: never negative.
        assert all(regret >= 0 for regret in per_seed)


def test_conditional_search_benchmark_compares_conditional_and_flat(tmp_path: Path) -> None:
    out = search_conditional.main(["--smoke", "--out", str(tmp_path)])
    result = json.loads(out.read_text())
    assert set(result["systems"]) == set(search_conditional.SYSTEMS)
    flat = result["systems"]["tuner TPE + ASHA, flat space"]
    assert flat["cheaper_than_flat"] == 1.0  # the yardstick against itself
    for figures in result["systems"].values():
        assert all(r >= 0 for r in figures["regret_per_seed"][str(result["budget_epochs"])])


def test_multiobjective_benchmark_traces_hypervolume(tmp_path: Path) -> None:
    out = search_multiobjective.main(["--smoke", "--out", str(tmp_path)])
    result = json.loads(out.read_text())
    assert set(result["systems"]) == set(search_multiobjective.SYSTEMS)
    for figures in result["systems"].values():
        volumes = [figures["median_hypervolume"][str(c)] for c in result["checkpoints_epochs"]]
        assert volumes == sorted(volumes)  # more epochs never lose a trained point


def test_digits_benchmark_traces_best_accuracy_against_wall_time(tmp_path: Path) -> None:
    result = json.loads(digits.main(["--smoke", "--out", str(tmp_path)]).read_text())
    assert set(result["systems"]) == {
        "tuner TPE + ASHA",
        "tuner random, no early stopping",
        "optuna TPE + successive halving",
    }
    for figures in result["systems"].values():
        (events,) = figures["events"]
        # 3 trials of at most 2 epochs.
        assert 3 <= len(events) <= 6
        # Each accuracy is timed within the sweep (tuner's to the next whole second).
        assert all(0 <= at <= figures["wall_s"][0] + 1 and 0 <= acc <= 1 for at, acc in events)
        assert figures["final_best"] == max(acc for _, acc in events)
    # Random search without early stopping trains every trial to the end.
    assert result["systems"]["tuner random, no early stopping"]["epochs_trained"] == [6]


def test_pbt_benchmark_counts_every_epoch_each_system_trained(tmp_path: Path) -> None:
    result = json.loads(pbt.main(["--smoke", "--out", str(tmp_path)]).read_text())
    systems = result["systems"]
    assert len(systems) == 3
    budget = result["budget_epochs"]  # 3 trials of 2 epochs
    assert budget == 6
    # Random search and PBT train every epoch of every trial; ASHA stops some early.
    assert systems["tuner random, no early stopping"]["epochs_per_seed"] == [budget]
    assert systems["tuner PBT (population 24, every 3 epochs)"]["epochs_per_seed"] == [budget]
    for figures in systems.values():
        (best,) = figures["best_per_seed"]
        assert 0 < best <= 1 and best == figures["median_best_within"][str(budget)]
        assert 0 < figures["median_test_accuracy"] <= 1


def test_checkpoint_benchmark_compares_the_policies_with_plain_optuna(tmp_path: Path) -> None:
    result = json.loads(checkpoints.main(["--smoke", "--out", str(tmp_path)]).read_text())
    assert set(result["wall_s"]) == {
        "optuna (serial), no checkpoints",
        "tuner, checkpoint every epoch",
        "tuner, default policy",
    }
    assert all(seconds > 0 for seconds in result["wall_s"].values())
    assert (tmp_path / "checkpoints-smoke.md").read_text().startswith("| system | wall s |")


def test_stop_when_benchmark_reports_where_each_threshold_stops(tmp_path: Path) -> None:
    result = json.loads(stop_when.main(["--smoke", "--out", str(tmp_path)]).read_text())
    assert result["seeds"] == 2 and result["trials"] == 25
    assert result["median_regret_at_end"] > 0  # TPE's best is above Hartmann-6's minimum
    for figures in result["thresholds"].values():
        assert len(figures["per_seed"]) == 2
        for seed in figures["per_seed"]:
            # A seed stops no earlier than min_trials, or not at all.
            assert seed["stopped_at"] is None or 20 <= seed["stopped_at"] <= 25


def test_ddp_benchmark_times_one_worker_against_two(tmp_path: Path) -> None:
    result = json.loads(ddp.main(["--smoke", "--out", str(tmp_path)]).read_text())
    settings = result["settings"]
    assert set(settings) == {"1 x 1 CPU", "2 x 1 CPU"}
    for workers, name in ((1, "1 x 1 CPU"), (2, "2 x 1 CPU")):
        figures = settings[name]
        assert len(figures["epoch_time_s"]) == result["workload"]["epochs"]
        assert figures["samples_per_s"] > 0
        # One torch thread per worker's CPU: Ray sets OMP_NUM_THREADS from it.
        assert figures["torch_threads"] == [1] * workers
    assert result["speedup"] > 0 and len(result["loadavg_before"]) == 3
    assert (tmp_path / "ddp-smoke.md").read_text().startswith("| workers | epoch s |")


def test_ddp_split_benchmark_parts_a_step(tmp_path: Path) -> None:
    result = json.loads(ddp_split.main(["--smoke", "--out", str(tmp_path)]).read_text())
    assert result["one_process_step_ms"] > 0
    parts = result["two_workers"]
    assert {"compute_ms", "allreduce_ms", "ddp_step_ms_bucket_25"} <= set(parts)
    assert all(ms > 0 for ms in parts.values())


def test_endtoend_benchmark_times_tuner_run_against_the_optuna_and_ray_tune_scripts(
    tmp_path: Path,
) -> None:
    result = json.loads(endtoend.main(["--smoke", "--out", str(tmp_path)]).read_text())
    (workload,) = result["workloads"]
    assert set(workload["wall_s"]) == {"optuna (serial script)", "ray tune (script)", "tuner run"}
    assert all(len(times) == 1 and times[0] > 0 for times in workload["wall_s"].values())
    # The tuner command's own account of where its time went was read from its output.
    (phases,) = workload["tuner_phases_at_s"]
    assert 0 < phases["first result"] <= phases["last trial ended"] <= phases["summary printed"]
    table = (tmp_path / "endtoend-smoke.md").read_text()
    assert "tuner / optuna" in table and "tuner / ray tune" in table


def test_trial_start_benchmark_times_a_fresh_process_first_optimizer(tmp_path: Path) -> None:
    result = json.loads(trial_start.main(["--smoke", "--out", str(tmp_path)]).read_text())
    rows = result["processes"]
    assert set(rows) == {"adam", trial_start.PREIMPORTED}
    (alone,) = rows["adam"]
    (preimported,) = rows[trial_start.PREIMPORTED]
    assert alone["build_optimizer_s"] > 0 and alone["first_step_s"] > 0
    assert "import_dynamo_s" in preimported and "import_dynamo_s" not in alone
    assert (tmp_path / "trial-start-smoke.md").read_text().startswith("| optimizer |")
