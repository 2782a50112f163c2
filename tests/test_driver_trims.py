"""What the driver leaves out of a sweep's fit() holds on real Ray: the trainable is
looked up once (tuner/engine/registry_memo.py), no trial's result file is read back at
the end (tuner/engine/unread_histories.py), and on this machine's own Ray no trial
makes a placement group (tuner/engine/fixed_resources.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import ray
from ray import tune
from ray.experimental.internal_kv import _internal_kv_del
from ray.tune import registry

from tests.conftest import each_metrics, each_result
from tuner.engine.fixed_resources import placement_groups_off, ray_started_here
from tuner.engine.registry_memo import trainables_remembered
from tuner.engine.unread_histories import result_histories_unread

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def reports(config: dict[str, Any]) -> None:
    for step in range(3):
        tune.report({"score": config["x"] + step})


def does_nothing(config: dict[str, Any]) -> None:
    pass


def forget_in_store(name: str) -> None:
    """Delete the trainable from Ray's key-value store, leaving the registry's memory."""
    store = registry._global_registry
    _internal_kv_del(registry._make_key(store.prefix, registry.TRAINABLE_CLASS, name))


def test_the_trainable_is_looked_up_in_the_store_once(ray_session: None) -> None:
    tune.register_trainable("remembered", reports)
    with trainables_remembered():
        first = registry.get_trainable_cls("remembered")
        forget_in_store("remembered")
        # Answered from memory: the store no longer has it.
        assert registry.get_trainable_cls("remembered") is first
    with pytest.raises(tune.TuneError, match="Unknown trainable"):
        registry.get_trainable_cls("remembered")  # outside, Ray asks the store again


def test_registering_again_drops_what_was_remembered(ray_session: None) -> None:
    tune.register_trainable("replaced", reports)
    with trainables_remembered():
        before = registry.get_trainable_cls("replaced")
        tune.register_trainable("replaced", does_nothing)
        after = registry.get_trainable_cls("replaced")
        assert (before._name, after._name) == ("reports", "does_nothing")
    assert not {"get", "contains", "register", "unregister"} & set(vars(registry._global_registry))


def three_reports(storage: Path, concurrency: int = 2) -> tune.ResultGrid:
    return tune.Tuner(
        reports,
        param_space={"x": tune.grid_search([1.0, 2.0, 3.0])},
        tune_config=tune.TuneConfig(max_concurrent_trials=concurrency),
        run_config=tune.RunConfig(storage_path=str(storage), verbose=0),
    ).fit()


def test_a_fit_within_reads_no_result_file_back(ray_session: None, tmp_path: Path) -> None:
    with result_histories_unread():
        results = three_reports(tmp_path)
    assert sorted(metrics["score"] for metrics in each_metrics(results)) == [3.0, 4.0, 5.0]
    assert all(result.metrics_dataframe is None for result in each_result(results))
    assert all(result.error is None and result.path for result in each_result(results))
    # Outside it Ray's own behaviour is back: every trial's history read from its file.
    histories = [result.metrics_dataframe for result in each_result(three_reports(tmp_path))]
    assert all(history is not None and len(history) == 3 for history in histories)


def placement_groups() -> int:
    return len(ray.util.placement_group_table())


def test_trials_on_this_machines_ray_make_no_placement_group(
    ray_session: None, tmp_path: Path
) -> None:
    assert ray_started_here()  # the module's Ray runs in this process, as `tuner run`'s does
    before = placement_groups()
    with placement_groups_off():
        results = three_reports(tmp_path)
    assert sorted(metrics["score"] for metrics in each_metrics(results)) == [3.0, 4.0, 5.0]
    assert placement_groups() == before
    three_reports(tmp_path)  # Ray's own way: one placement group a trial
    assert placement_groups() == before + 3


def test_trials_without_placement_groups_still_share_the_machine(
    ray_session: None, tmp_path: Path
) -> None:
    """Two CPUs, one trial a CPU: never more than two trials run at once, even when
    Ray Tune may start all of them."""
    with placement_groups_off():
        results = tune.Tuner(
            holds_a_cpu,
            param_space={"x": tune.grid_search([1, 2, 3, 4])},
            run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
        ).fit()
    spans = sorted((m["start"], m["end"]) for m in each_metrics(results))
    most = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert len(spans) == 4 and most == 2


def holds_a_cpu(config: dict[str, Any]) -> None:
    import time

    start = time.time()
    time.sleep(1.5)
    tune.report({"start": start, "end": time.time()})
