"""On a cluster whose nodes carry their instance type, a sweep without `cost:` is priced
from the dated instance table: each trial pays its share of its node's hourly price."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from rich.console import Console

from bench.common import python_path
from tuner.engine.runner import RunOptions, run_sweep
from tuner.spec import parse_spec
from tuner.tracking.cost import CostLedger, Held
from tuner.tracking.instance_prices import (
    AS_OF,
    LABEL_INSTANCE_TYPE,
    LABEL_MARKET,
    PRICES,
    node_price,
)

SPOT_M6I = {LABEL_INSTANCE_TYPE: "m6i.xlarge", LABEL_MARKET: "spot"}


def test_a_node_s_price_comes_from_its_labels() -> None:
    price = node_price({LABEL_INSTANCE_TYPE: "g5.xlarge", LABEL_MARKET: "spot"})
    assert price is not None
    assert price.usd_per_hour == PRICES["g5.xlarge"].spot_usd_per_hour
    on_demand = node_price({LABEL_INSTANCE_TYPE: "g5.xlarge"})  # no market label
    assert on_demand is not None and on_demand.usd_per_hour == 1.006
    assert node_price({LABEL_INSTANCE_TYPE: "x9.huge"}) is None
    assert node_price({}) is None
    assert AS_OF  # the table says when its prices were read


def test_a_trial_pays_its_larger_share_of_the_node() -> None:
    price = node_price({LABEL_INSTANCE_TYPE: "g5.xlarge", LABEL_MARKET: "on-demand"})
    assert price is not None
    assert price.share(cpus=1, gpus=1) == 1.0  # the node's one GPU
    assert price.share(cpus=1, gpus=0.5) == 0.5  # half the GPU, a quarter of the CPUs
    assert price.share(cpus=2, gpus=0) == 0.5  # a CPU trial on a GPU node: its CPUs
    ledger = CostLedger()
    ledger.start("a", cpus=1, gpus=0.5, now=0)
    ledger.locate("a", price)
    held = ledger.stop("a", now=3600)
    assert held.usd(None) == pytest.approx(1.006 * 0.5)
    ledger.start("b", cpus=1, gpus=0, now=0)
    ledger.locate("b", None)  # a node the table does not know
    assert ledger.stop("b", now=3600).usd(None) is None
    assert ledger.total().usd(None) is None  # the sweep's sum claims no dollars then
    assert Held().usd(None) is None


@pytest.fixture(scope="module")
def labelled_ray() -> Iterator[None]:
    """An embedded Ray whose one node says it is a spot m6i.xlarge, as the infra's
    bootstrap labels its nodes."""
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        labels=SPOT_M6I,
        runtime_env={"env_vars": {"PYTHONPATH": python_path()}},
    )
    yield
    ray.shutdown()


@pytest.mark.ray
def test_a_sweep_on_a_labelled_node_is_priced_from_the_table(
    labelled_ray: None, tmp_path: Path
) -> None:
    spec = parse_spec(
        {
            "name": "priced-by-node",
            "trainable": "tests.trainables:report_twice",
            "metric": "score",
            "mode": "max",
            "num_samples": 3,
            "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        }
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_sweep(
        spec,
        RunOptions(
            tracking_uri=uri, storage=str(tmp_path / "runs"), console=Console(file=io.StringIO())
        ),
    )
    client = MlflowClient(uri)
    runs = client.search_runs([result.experiment_id])
    trials = [r.data.metrics for r in runs if r.data.tags.get("tuner.role") == "trial"]
    (parent,) = [r.data.metrics for r in runs if r.data.tags.get("tuner.role") == "sweep"]
    per_hour = PRICES["m6i.xlarge"].spot_usd_per_hour
    assert len(trials) == 3
    for metrics in trials:
        # One CPU of the node's four: a quarter of its spot price, for the hours held.
        assert metrics["cost_usd"] == pytest.approx(metrics["cpu_hours"] * per_hour / 4)
        assert metrics["cost_usd"] > 0
    assert parent["cost_usd"] == pytest.approx(sum(m["cost_usd"] for m in trials))
    assert result.cost["cost_usd"] == pytest.approx(parent["cost_usd"])
