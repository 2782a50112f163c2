"""Values training code reports that Ray took badly, run through the `tuner` command:
a `Decimal` ended the whole sweep with a traceback from Ray's driver, a tensor of one
value failed its trial, and a tensor of several failed it with Ray's line and a hint to
stop calling `ray.train.*`, which the trainable never called."""

from __future__ import annotations

import decimal
import fractions
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import run_cli
from tests.test_user_code import trial_runs, write_sweep
from tuner.engine.reported_values import UnreportableValue, plain_numbers
from tuner.tracking.results import as_number


def test_values_of_one_number_are_floats_and_the_rest_are_named() -> None:
    assert as_number(decimal.Decimal("0.125")) == 0.125
    assert as_number(fractions.Fraction(1, 4)) == 0.25
    assert as_number(torch.tensor([0.5])) == 0.5
    assert as_number(np.array([[2.0]])) == 2.0
    for not_one_number in (1j, np.array([True]), decimal.Decimal("sNaN"), torch.ones(2)):
        assert as_number(not_one_number) is None, not_one_number
    plain = plain_numbers({"per_class": [torch.tensor(0.5), np.float32(0.25)], "n": (1, 2)})
    assert plain == {"per_class": [0.5, 0.25], "n": (1, 2)}
    for value, said in [
        (torch.ones(3), "'val/w' is a torch tensor of shape (3,)"),
        (torch.nn.Linear(1, 1), "'val/w' is a torch module (Linear)"),
        (1 + 2j, "'val/w' is a complex ((1+2j))"),
    ]:
        with pytest.raises(UnreportableValue, match=re.escape(said)):
            plain_numbers({"val": {"w": value}})


VALUES_CODE = """
    import decimal
    import fractions

    import torch
    from ray import tune


    def fit(config):
        for epoch in range(1, 3):
            weight = torch.tensor(2.0, requires_grad=True)
            metrics = {
                "epoch": epoch,
                # A keepdim mean: a tensor of one value, with its graph.
                "loss": (weight * config["x"] / epoch).reshape(1),
                "cost": decimal.Decimal("0.125") * epoch,
                "share": fractions.Fraction(1, 4),
                "per_class": [torch.tensor(0.5), torch.tensor(0.75)],
            }
            if config["x"] > 1:
                metrics["weights"] = torch.ones(3)
            tune.report(metrics)
"""


@pytest.mark.e2e
def test_decimals_and_one_value_tensors_are_metrics_and_a_tensor_is_named(
    tmp_path: Path,
) -> None:
    sweep = write_sweep(
        tmp_path,
        VALUES_CODE,
        metric="loss",
        mode="min",
        searcher={"kind": "grid"},
        params={"x": {"type": "grid", "values": [0.5, 2.0]}},
    )
    out = run_cli("run", sweep.name, cwd=tmp_path)
    # The Decimal ended the sweep with Ray's TypeError traceback, and the 1-value loss
    # failed its trial as "not a number".
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 0, out.stderr
    [failed] = [line for line in out.stdout.splitlines() if "failed" in line and "trial " in line]
    assert (
        "UnreportableValue: 'weights' is a torch tensor of shape (3,): a result holds numbers"
        in failed
    )
    assert "ray.train" not in failed  # the trainable called ray.tune.report
    client, parent, trials = trial_runs(tmp_path)
    assert parent.info.status == "FINISHED"
    [finished] = [run for run in trials if run.info.status == "FINISHED"]
    assert finished.data.metrics["loss"] == pytest.approx(0.5)
    assert finished.data.metrics["cost"] == pytest.approx(0.25)
    assert finished.data.metrics["share"] == pytest.approx(0.25)
    history = client.get_metric_history(finished.info.run_id, "loss")
    assert [(p.step, p.value) for p in history] == [(1, 1.0), (2, 0.5)]
    assert parent.data.tags["tuner.best_run_id"] == finished.info.run_id
