"""What trials cost: resource-hours held, dollars at the sweep's prices, summed for the
sweep exactly as its trials add up."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import run_cli
from tuner.cli.common import amount, held_line
from tuner.spec import parse_spec
from tuner.spec.schema import CostPrices
from tuner.tracking.cost import CostLedger, Held


def hours(held: Held) -> tuple[float, float]:
    return held.cpu_hours, held.gpu_hours


def test_a_trial_holds_its_resources_from_start_to_end_restarts_included() -> None:
    ledger = CostLedger()
    ledger.start("a", cpus=2, gpus=0.5, now=0)
    assert hours(ledger.stop("a", now=1800)) == (1.0, 0.25)
    ledger.start("a", cpus=2, gpus=0.5, now=3600)  # restarted after losing its worker
    assert hours(ledger.stop("a", now=5400)) == (2.0, 0.5)
    ledger.start("b", cpus=1, gpus=0, now=3600)
    assert hours(ledger.total(now=7200)) == (3.0, 0.5)  # b counted while it runs


def test_ended_trials_stay_in_the_total_only() -> None:
    ledger = CostLedger()
    for number in range(1000):  # a long sweep: each ended trial is summed, not kept
        ledger.start(f"t{number}", cpus=1, gpus=0, now=0)
        assert hours(ledger.end(f"t{number}", now=36)) == (0.01, 0.0)
    ledger.start("running", cpus=2, gpus=1, now=0)
    assert hours(ledger.total(now=3600)) == pytest.approx((12.0, 1.0))
    assert hours(ledger.held("t0")) == (0.0, 0.0)  # forgotten, counted in the total


def test_a_resumed_trial_adds_to_what_its_run_recorded() -> None:
    ledger = CostLedger()
    ledger.carry_over("a", Held(0.5, 0.0))
    ledger.start("a", cpus=1, gpus=0, now=0)
    assert hours(ledger.stop("a", now=1800)) == (1.0, 0.0)


def test_dollars_only_where_every_held_resource_has_a_price() -> None:
    held = Held(cpu_hours=10, gpu_hours=2)
    assert held.usd(None) is None
    assert held.usd(CostPrices(usd_per_gpu_hour=1.10)) is None  # CPUs held, unpriced
    assert held.usd(CostPrices(usd_per_gpu_hour=1.10, usd_per_cpu_hour=0.04)) == pytest.approx(2.6)
    assert Held(cpu_hours=0, gpu_hours=2).usd(CostPrices(usd_per_gpu_hour=1.5)) == 3.0
    metrics = held.metrics(CostPrices(usd_per_gpu_hour=1.0, usd_per_cpu_hour=0.0))
    assert metrics == {"cpu_hours": 10, "gpu_hours": 2, "cost_usd": 2.0}
    assert "cost_usd" not in held.metrics(None)


def test_prices_in_the_sweep_file() -> None:
    raw = {
        "name": "s",
        "trainable": "builtin:classifier",
        "metric": "val_accuracy",
        "mode": "max",
        "params": {"lr": {"type": "float", "low": 0.001, "high": 0.1}},
        "cost": {"usd_per_gpu_hour": 1.10, "usd_per_cpu_hour": 0.04},
    }
    spec = parse_spec(raw)
    assert spec.cost == CostPrices(usd_per_gpu_hour=1.10, usd_per_cpu_hour=0.04)
    from tuner.spec import SpecError

    with pytest.raises(SpecError, match=r"cost\.usd_per_gpu_hour"):
        parse_spec({**raw, "cost": {"usd_per_gpu_hour": -1}})
    with pytest.raises(SpecError, match=r"cost\.usd_per_hour"):
        parse_spec({**raw, "cost": {"usd_per_hour": 1}})


@pytest.mark.e2e
def test_a_sweep_logs_what_each_trial_held_and_the_sum(tmp_path: Path) -> None:
    spec = {
        "name": "costed",
        "trainable": "tests.trainables:report_twice",
        "metric": "score",
        "mode": "max",
        "num_samples": 3,
        "resources_per_trial": {"cpu": 0.5},
        # A dollar per CPU-second: dollars read as CPU-seconds held.
        "cost": {"usd_per_cpu_hour": 3600, "usd_per_gpu_hour": 10},
        "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    # Plots are drawn at the end only after a long fit (TUNER_PLOTS_AFTER_S): this one
    # never counts as long, however slow a loaded machine makes it.
    done = run_cli(
        "run", "s.yaml", cwd=tmp_path, timeout=300, env={"TUNER_PLOTS_AFTER_S": "100000"}
    )
    assert done.returncode == 0, done.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("costed")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    trials = [r.data.metrics for r in runs if r.data.tags.get("tuner.role") == "trial"]
    (parent,) = [r.data.metrics for r in runs if r.data.tags.get("tuner.role") == "sweep"]
    assert len(trials) == 3
    for metrics in trials:
        # Held for a fraction of a second to a few seconds, half a CPU, no GPU.
        assert 0 < metrics["cost_usd"] < 30 and metrics["gpu_hours"] == 0
        assert metrics["cost_usd"] == pytest.approx(metrics["cpu_hours"] * 3600)
    for key in ("cpu_hours", "gpu_hours", "cost_usd"):
        assert parent[key] == pytest.approx(sum(metrics[key] for metrics in trials))
    held = next(line for line in done.stdout.splitlines() if line.startswith("held: "))
    assert f"(${amount(parent['cost_usd'])})" in held
    # A sweep this short ends without drawing its plots, and says how to draw them.
    assert "plots: `tuner report costed --log` draws them into the sweep's MLflow run" in (
        done.stdout
    )


def test_held_hours_and_dollars_read_without_an_exponent() -> None:
    # A second's trial held 9.607e-06 CPU-hours: printed so, it read as nine.
    assert held_line({"cpu_hours": 9.607e-06, "gpu_hours": 0.0}) == (
        "<0.0001 CPU-hours, 0 GPU-hours"
    )
    assert held_line({"cpu_hours": 0.01234567, "gpu_hours": 2.5, "cost_usd": 4.5e-05}) == (
        "0.01235 CPU-hours, 2.5 GPU-hours (<$0.0001)"
    )
    assert held_line({"cpu_hours": 12345.6, "gpu_hours": 1.0, "cost_usd": 38211.0}) == (
        "12,346 CPU-hours, 1 GPU-hours ($38,211)"
    )
    assert amount(0.0001) == "0.0001"
