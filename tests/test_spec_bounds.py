"""Values that validate used to pass and `tuner run` then failed on, after Ray started:
each is now one line from `tuner validate`, exit status 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import _validate_param_name
from ray.tune.result import AUTO_RESULT_KEYS

from tests.conftest import run_cli
from tuner.engine.loading import load_spec
from tuner.spec import SpecError, parse_spec
from tuner.spec.names import RESERVED_RESULT_KEYS, mlflow_key_problem
from tuner.spec.searchers import AshaScheduler, OptunaSearcher
from tuner.tracking import results


def sweep(**extra: Any) -> dict[str, Any]:
    return {
        "name": "s",
        "trainable": "builtin:classifier",
        "metric": "val_accuracy",
        "mode": "max",
        "params": {"lr": {"type": "float", "low": 0.001, "high": 0.1}},
        **extra,
    }


def problem(raw: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(raw, "s.yaml")
    return caught.value.key, caught.value.problem


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"num_samples": True}, "num_samples"),
        ({"max_concurrent_trials": False}, "max_concurrent_trials"),
        ({"fail_fast_after": True}, "fail_fast_after"),
        ({"searcher": {"kind": "random", "seed": -1}}, "searcher.seed"),
        ({"searcher": {"kind": "optuna", "seed": 2**32}}, "searcher.seed"),
        ({"searcher": {"kind": "random", "seed": True}}, "searcher.seed"),
        ({"checkpoint": {"every_epochs": True}}, "checkpoint.every_epochs"),
    ],
)
def test_counts_and_seeds_are_whole_numbers_in_range(extra: dict[str, Any], key: str) -> None:
    assert problem(sweep(**extra))[0] == key


def test_the_widest_seed_is_taken() -> None:
    spec = parse_spec(sweep(searcher={"kind": "optuna", "seed": 2**32 - 1}))
    assert isinstance(spec.searcher, OptunaSearcher) and spec.searcher.seed == 2**32 - 1


@pytest.mark.parametrize("amount", [1e-9, 0.00005, 0.12345])
def test_resource_fractions_ray_cannot_count_are_refused(amount: float) -> None:
    key, text = problem(sweep(resources_per_trial={"cpu": amount}))
    assert key == "resources_per_trial.cpu" and "steps of 0.0001" in text
    assert problem(sweep(resources_per_trial={"gpu": amount}))[0] == "resources_per_trial.gpu"


def test_resource_fractions_in_ray_units_are_taken() -> None:
    spec = parse_spec(sweep(resources_per_trial={"cpu": 0.0001, "gpu": 0.125}))
    assert (spec.resources_per_trial.cpu, spec.resources_per_trial.gpu) == (0.0001, 0.125)


def test_a_reduction_factor_near_one_names_the_least_that_fits() -> None:
    asha = {"kind": "asha", "max_t": 100, "reduction_factor": 1.0000001}
    key, text = problem(sweep(scheduler=asha))
    assert key == "scheduler.reduction_factor"
    assert "46,051,705 rungs" in text and "at least 1.048" in text
    fits = parse_spec(sweep(scheduler={**asha, "reduction_factor": 1.048}))
    assert isinstance(fits.scheduler, AshaScheduler) and fits.scheduler.reduction_factor == 1.048


def test_a_grid_of_millions_is_refused_before_anything_is_built() -> None:
    params = {
        "a": {"type": "grid", "values": list(range(2000))},
        "b": {"type": "grid", "values": list(range(1000))},
    }
    key, text = problem(sweep(searcher={"kind": "grid"}, params=params))
    assert key == "params"
    assert text == (
        "the sweep would run 2,000,000 trials (2,000,000 grid points x num_samples 1); "
        "at most 100,000"
    )


def test_too_many_samples_from_the_file_or_the_command_line() -> None:
    assert problem(sweep(num_samples=100_001))[0] == "num_samples"
    spec = parse_spec(sweep(num_samples=10))
    with pytest.raises(SpecError, match="at most 100,000"):
        spec.with_num_samples(10**9)


@pytest.mark.parametrize(
    "name",
    [
        "lr",
        "a b",
        "val/loss",
        "x:y",
        "naïve",
        "a\x00b",
        "bad\nline",
        "../up",
        "/abs",
        "a//b",
        "./a",
        "semi;colon",
        "x" * 251,
        "ok.name-1",
    ],
)
def test_mlflow_key_rule_matches_mlflow(name: str) -> None:
    try:
        _validate_param_name(name)
        takes = len(name) <= 250
    except MlflowException:
        takes = False
    # Stricter where MLflow's regex lets a trailing newline through.
    assert (mlflow_key_problem(name) is None) == (takes and "\n" not in name)


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"config": {"bad;name": 1}}, "config.bad;name"),
        ({"params": {"lr rate!": {"type": "float", "low": 0.1, "high": 1}}}, "params.lr rate!"),
        ({"metric": "val/../acc"}, "metric"),
        ({"config": {"k" * 244: 1}}, "config." + "k" * 244),
    ],
)
def test_names_mlflow_refuses_are_refused_at_validate(extra: dict[str, Any], key: str) -> None:
    found, text = problem(sweep(**extra))
    assert found == key and "MLflow" in text


@pytest.mark.parametrize(
    ("extra", "key", "logged_as"),
    [
        ({"params": {"p" * 248: {"type": "float", "low": 0.1, "high": 1}}}, "params.", "best."),
        ({"metric": "m" * 248}, "metric", "best_"),
        (
            {
                "trainable": "tests.trainables:config_digest",
                "searcher": {"kind": "random"},
                "scheduler": {
                    "kind": "pbt",
                    "mutations": {"q" * 249: {"type": "categorical", "choices": [1, 2]}},
                },
            },
            "scheduler.mutations.",
            "hp.",
        ),
    ],
)
def test_a_name_that_fits_alone_but_not_with_tuners_prefix_is_refused_at_validate(
    extra: dict[str, Any], key: str, logged_as: str
) -> None:
    """The sweep's run logs `best.<param>` and `best_<metric>` once every trial has run,
    a PBT trial `hp.<mutation>`: MLflow refused a 248-character param name only then,
    with a traceback, the sweep's run FAILED."""
    found, text = problem(sweep(**extra))
    assert found.startswith(key)
    assert f"tuner logs it to MLflow as {logged_as!r} + name" in text


def test_a_param_mlflow_refuses_in_a_trials_run_is_refused_though_its_best_name_fits() -> None:
    found, text = problem(sweep(params={"../x": {"type": "float", "low": 0.1, "high": 1}}))
    assert (found, text) == (
        "params.../x",
        "MLflow needs a name that is a plain relative path (got '../x')",
    )


def test_reserved_result_keys_cover_what_ray_and_the_tracking_fill_in() -> None:
    assert set(AUTO_RESULT_KEYS) | results._not_metrics() == RESERVED_RESULT_KEYS


@pytest.mark.parametrize("metric", ["epoch", "training_iteration", "done", "time_total_s"])
def test_a_reserved_metric_is_refused(metric: str) -> None:
    key, text = problem(sweep(metric=metric))
    assert key == "metric" and "fills in" in text


def test_an_escaped_key_keeps_the_error_on_one_line() -> None:
    line = SpecError("s.yaml", "config.a\nb\x00", "bad").line()
    assert line == "s.yaml: config.a\\nb\\x00: bad"


# --- the trainable ---------------------------------------------------------------------


def check(tmp_path: Path, **extra: Any) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sweep(**extra)))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return caught.value.line().removeprefix(f"{path}: ")


def test_a_builtin_names_the_metrics_it_reports(tmp_path: Path) -> None:
    assert check(tmp_path, metric="val_auc") == (
        "metric: builtin:classifier does not report 'val_auc'; every epoch it reports "
        "val_accuracy, val_loss, train_loss, lr, epoch_time_s, num_params, inference_ms"
    )
    assert check(tmp_path, trainable="builtin:regressor", metric="val_accuracy").startswith(
        "metric: builtin:regressor does not report 'val_accuracy'; every epoch it reports val_rmse"
    )


@pytest.mark.parametrize(
    ("trainable", "says"),
    [
        ("collections:OrderedDict", "is a class but not a ray.tune.Trainable subclass"),
        ("tests.trainables:config_digest", None),
        ("os:getcwd", "takes no arguments; a trainable takes one: the config"),
        ("shutil:copyfile", "takes (src, dst, follow_symlinks); a trainable takes one"),
    ],
)
def test_a_trainable_is_a_function_of_the_config_or_a_trainable(
    tmp_path: Path, trainable: str, says: str | None
) -> None:
    if says is None:  # one positional argument: fine
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump(sweep(trainable=trainable, metric="m")))
        assert load_spec(path).trainable == trainable
        return
    line = check(tmp_path, trainable=trainable, metric="m")
    assert line.startswith("trainable: ") and says in line


def test_validate_says_it_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep(num_samples=True)))
    done = run_cli("validate", "s.yaml", cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: s.yaml: num_samples: Input should be a valid integer"


@pytest.mark.parametrize(
    ("config", "line"),
    [
        ({"hidden": True}, "config.hidden: must be a number, not true (builtin:classifier)"),
        ({"dropout": False}, "config.dropout: must be a number, not false (builtin:classifier)"),
    ],
)
def test_a_knob_given_true_or_false_for_a_number(
    tmp_path: Path, config: dict[str, Any], line: str
) -> None:
    assert check(tmp_path, config=config) == line


@pytest.mark.parametrize("value", [True, "reduce-overhead", "max-autotune"])
def test_compile_takes_true_or_one_of_torchs_modes(tmp_path: Path, value: Any) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sweep(config={"compile": value})))
    assert load_spec(path).config["compile"] == value


@pytest.mark.parametrize(
    ("config", "line"),
    [
        ({"compile": "fastest"}, "config.compile: must be true, false or one of default, "
         "reduce-overhead, max-autotune, max-autotune-no-cudagraphs, not 'fastest'"),
        ({"data_on_device": "sometimes"},
         "config.data_on_device: must be true, false or one of auto, not 'sometimes'"),
    ],
)  # fmt: skip
def test_a_switch_names_its_choices_for_a_value_it_does_not_take(
    tmp_path: Path, config: dict[str, Any], line: str
) -> None:
    assert check(tmp_path, config=config) == f"{line} (builtin:classifier)"


def test_a_slash_in_a_param_name_is_refused_with_the_optuna_searcher_only() -> None:
    """Ray's OptunaSearch unflattens the names it suggests: a trial got {a: {b: ...}}
    and failed on config['a/b'] (KeyError); beside a param `a` it was dropped silently."""
    slashed = {"a/b": {"type": "float", "low": 0.1, "high": 0.2}}
    key, text = problem(sweep(params=slashed, searcher={"kind": "optuna"}))
    assert key == "params.a/b"
    assert text.startswith("the optuna searcher reads '/' in a name as nesting")
    assert "a/b" in parse_spec(sweep(params=slashed, searcher={"kind": "random"})).params
