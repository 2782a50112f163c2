"""What the driver leaves out of a sweep's fit() holds on real Ray: the trainable is
looked up once (tuner/engine/registry_memo.py), and no trial's result file is read back
at the end (tuner/engine/unread_histories.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ray import tune
from ray.experimental.internal_kv import _internal_kv_del
from ray.tune import registry

from tuner.engine.registry_memo import trainables_remembered
from tuner.engine.tuner_factory import fitting

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


def test_a_fit_within_reads_no_result_file_back(ray_session: None, tmp_path: Path) -> None:
    def fit() -> tune.ResultGrid:
        return tune.Tuner(
            reports,
            param_space={"x": tune.grid_search([1.0, 2.0])},
            run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
        ).fit()

    with fitting():
        results = fit()
    assert sorted(result.metrics["score"] for result in results) == [3.0, 4.0]
    assert all(result.metrics_dataframe is None for result in results)
    assert all(result.error is None and result.path for result in results)
    # Outside it Ray's own behaviour is back: every trial's history read from its file.
    assert all(len(result.metrics_dataframe) == 3 for result in fit())
