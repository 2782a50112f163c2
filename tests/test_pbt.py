"""Population-based training: the sweep file's rules, the lineage, the trainer taking
another trial's checkpoint with new values, and whole sweeps through the CLI."""

from __future__ import annotations

import copy
import json
import math
import pickle
import signal
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import run_and_signal, run_cli
from tuner.search.pbt import Lineage, kept_in_range
from tuner.spec import SpecError, parse_spec
from tuner.spec.params import CategoricalParam, FloatParam, IntParam
from tuner.tracking.tags import TAG_EXPLOIT, TAG_PARENT, TAG_ROLE, TAG_SCHEDULE
from tuner.trainer.checkpoint import TrainerState
from tuner.trainer.epoch import Epoch
from tuner.trainer.knobs import ClassifierKnobs
from tuner.trainer.loop import run_epochs

LR = {"type": "float", "low": 1.0e-3, "high": 0.1, "log": True}
DROPOUT = {"type": "float", "low": 0.0, "high": 0.5}
INTS = {"type": "int", "low": 2, "high": 9}


def pbt_sweep(**changes: Any) -> dict[str, Any]:
    sweep: dict[str, Any] = {
        "name": "pbt",
        "trainable": "builtin:classifier",
        "metric": "val_accuracy",
        "mode": "max",
        "num_samples": 4,
        "searcher": {"kind": "random", "seed": 0},
        "scheduler": {"kind": "pbt", "perturbation_interval": 2},
        "params": {"lr": LR, "dropout": DROPOUT, "hidden": {"type": "int", "low": 8, "high": 64}},
        "config": {"epochs": 6},
    }
    return {**sweep, **changes}


# --- the sweep file ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "key", "problem"),
    [
        (
            {"searcher": {"kind": "optuna"}},
            "searcher.kind",
            "pbt samples its population from params itself (Ray's PBT takes no search "
            "algorithm): use searcher kind random or grid",
        ),
        (
            {"scheduler": {"kind": "pbt", "mutations": {"lr": {**LR, "low": 1.0e-5}}}},
            "scheduler.mutations.lr",
            "[1e-05, 0.1] leaves the param's range [0.001, 0.1]",
        ),
        (
            {
                "scheduler": {
                    "kind": "pbt",
                    "mutations": {"lr": {"type": "int", "low": 1, "high": 2}},
                }
            },
            "scheduler.mutations.lr.type",
            "is int but params declares float",
        ),
        (
            {
                "scheduler": {
                    "kind": "pbt",
                    "mutations": {"epochs": {"type": "int", "low": 2, "high": 9}},
                }
            },
            "scheduler.mutations.epochs",
            "is fixed under config; search it under params to let pbt change it",
        ),
        (
            {"scheduler": {"kind": "pbt", "quantile_fraction": 0.6}},
            "scheduler.quantile_fraction",
            "Input should be less than or equal to 0.5",
        ),
        (
            {
                "objectives": [
                    {"metric": "val_accuracy", "mode": "max"},
                    {"metric": "num_params", "mode": "min"},
                ],
                "metric": None,
                "mode": None,
            },
            "objectives",
            "pbt ranks trials by one metric: give metric and mode (and no constraints)",
        ),
        (
            {"scheduler": {"kind": "pb2", "resample_probability": 0.5}},
            "scheduler.resample_probability",
            "pb2 chooses new values with its bandit; resample_probability is pbt's",
        ),
        (
            {"scheduler": {"kind": "pb2"}, "searcher": {"kind": "optuna"}},
            "searcher.kind",
            "pb2 samples its population from params itself (Ray's PBT takes no search "
            "algorithm): use searcher kind random or grid",
        ),
    ],
    ids=[
        "optuna",
        "outside-range",
        "wrong-type",
        "fixed-in-config",
        "quantile",
        "two-objectives",
        "pb2-resampling",
        "pb2-optuna",
    ],
)
def test_a_pbt_sweep_the_scheduler_cannot_run_is_one_line(
    changes: dict[str, Any], key: str, problem: str
) -> None:
    raw = {k: v for k, v in pbt_sweep(**changes).items() if v is not None}
    with pytest.raises(SpecError) as raised:
        parse_spec(raw, "sweep.yaml")
    assert str(raised.value) == f"sweep.yaml: {key}: {problem}"


@pytest.mark.parametrize(
    ("scheduler", "params", "line"),
    [
        (
            {"kind": "pbt", "mutations": {"hidden": {"type": "int", "low": 8, "high": 64}}},
            None,
            "scheduler.mutations.hidden: 'hidden' cannot change while a trial trains (it "
            "shapes the model, the data or the run); mutable: beta1, beta2, class_weights, cutout, "
            "dropout, focal_gamma, grad_clip, input_noise, l1, label_smoothing, lr, "
            "mixup_alpha, momentum, optimizer, random_flip, random_shift, weight_decay",
        ),
        (
            {"kind": "pbt"},
            {"hidden": {"type": "int", "low": 8, "high": 64}},
            "scheduler.mutations: none of the searched params can change while a trial "
            "trains; list the mutations (mutable: beta1, beta2, class_weights",
        ),
        (
            {"kind": "pbt", "mutations": {"grad_clip": {"type": "float", "low": -1, "high": 2}}},
            None,
            "scheduler.mutations.grad_clip.low: Input should be greater than or equal to 0 "
            "(knob 'grad_clip')",
        ),
    ],
    ids=["shape-knob", "nothing-mutable", "knob-bounds"],
)
def test_validate_refuses_a_mutation_the_trainer_cannot_take(
    tmp_path: Path, scheduler: dict[str, Any], params: dict[str, Any] | None, line: str
) -> None:
    sweep = tmp_path / "sweep.yaml"
    raw = pbt_sweep(scheduler=scheduler)
    if params is not None:
        raw["params"] = params
    sweep.write_text(yaml.safe_dump(raw))
    result = run_cli("validate", str(sweep), cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith(f"error: {sweep}: {line}")
    assert len(result.stderr.strip().splitlines()) == 1


def test_mutations_default_to_the_searched_knobs_that_may_change() -> None:
    from tuner.engine.population import lineage_of

    lineage = lineage_of(parse_spec(pbt_sweep()), "defaults-test")
    assert lineage is not None
    assert list(lineage.mutations) == ["lr", "dropout"]  # not hidden: it shapes the model
    # PB2's bandit takes numbers: a searched choice is left as the population drew it.
    choice = {"optimizer": {"type": "categorical", "choices": ["sgd", "adam"]}}
    pb2 = pbt_sweep(scheduler={"kind": "pb2"}, params={**pbt_sweep()["params"], **choice})
    lineage = lineage_of(parse_spec(pb2), "defaults-test-pb2")
    assert lineage is not None and list(lineage.mutations) == ["lr", "dropout"]


def test_own_code_under_pbt_without_a_last_epoch_is_warned_about() -> None:
    """A trial of one's own code was exploited at its last result in about half the runs
    of a PBT sweep with no stop rule: it ended on the donor's weights under its own scores."""
    own = {"trainable": "tests.trainables:pbt_climber", "metric": "score", "params": {"lr": LR}}
    for kind in ("pbt", "pb2"):
        sweep = pbt_sweep(**own, scheduler={"kind": kind})
        assert parse_spec(sweep).warnings() == [
            f"scheduler {kind} and no stop.training_iteration: a trial of your trainable may "
            "copy another's checkpoint at its last epoch and end with those weights under its "
            "own scores; add stop: {training_iteration: N}, N its epochs"
        ]
        assert parse_spec({**sweep, "stop": {"training_iteration": 8}}).warnings() == []
    assert parse_spec(pbt_sweep()).warnings() == []  # a built-in trainer knows its epochs


# --- perturbed values and the lineage ------------------------------------------------------


def test_perturbed_values_stay_in_range_and_on_steps() -> None:
    lr = FloatParam(type="float", low=1e-3, high=0.1, log=True)
    assert kept_in_range(0.12, lr) == 0.1
    assert kept_in_range(5e-4, lr) == 1e-3
    assert kept_in_range(0.05, lr) == 0.05
    width = IntParam(type="int", low=8, high=64, step=8)
    assert kept_in_range(77, width) == 64
    assert kept_in_range(21.6, width) == 24
    assert isinstance(kept_in_range(21.6, width), int)
    choice = CategoricalParam(type="categorical", choices=["sgd", "adam"])
    assert kept_in_range("adam", choice) == "adam"


def test_a_trials_schedule_includes_its_donors_epochs_and_survives_pickling() -> None:
    lr = FloatParam(type="float", low=1e-3, high=0.1)
    optimizer = CategoricalParam(type="categorical", choices=["sgd", "adam"])
    lineage = Lineage("lineage-test", {"lr": lr, "optimizer": optimizer})
    lineage.begin("a", {"lr": 0.01, "optimizer": "sgd", "hidden": 8})
    lineage.begin("b", {"lr": 0.05, "optimizer": "adam"})
    lineage.exploit("b", donor="a", donor_epoch=4, config={"lr": 0.012, "optimizer": "sgd"})
    lineage.exploit("a", donor="b", donor_epoch=8, config={"lr": 0.02, "optimizer": "adam"})
    # a's weights: a's own first 4 epochs, then b's (a's copy with lr 0.012), then its own.
    assert [(s.epoch, s.values) for s in lineage.schedule("a")] == [
        (1, {"lr": 0.01, "optimizer": "sgd"}),
        (5, {"lr": 0.012, "optimizer": "sgd"}),
        (9, {"lr": 0.02, "optimizer": "adam"}),
    ]
    assert [(e.epoch, e.donor, e.donor_epoch) for e in lineage.exploits["a"]] == [(9, "b", 8)]
    assert lineage.hp_points({"lr": 0.02, "optimizer": "adam"}) == {
        "hp.lr": 0.02,
        "hp.optimizer": 1.0,
    }
    # A choice of numbers is plotted as its number, not its place in the list.
    rates = Lineage("rates", {"lr": CategoricalParam(type="categorical", choices=[0.01, 0.4])})
    assert rates.hp_points({"lr": 0.4}) == {"hp.lr": 0.4}
    flags = Lineage("flags", {"bn": CategoricalParam(type="categorical", choices=[False, True])})
    assert flags.hp_points({"bn": True}) == {"hp.bn": 1.0}
    # Ray pickles the scheduler into the experiment; a restore in a new process brings
    # the lineage back as that process's lineage for the key.
    state = pickle.dumps(lineage)
    Lineage._shared.pop("lineage-test", None)
    restored = pickle.loads(state)
    assert restored is Lineage.shared("lineage-test", {})
    assert restored.schedule("a") == lineage.schedule("a")


# --- the trainer takes another trial's checkpoint with new values --------------------------


def train(config: dict[str, Any], resume: TrainerState | None = None) -> list[Epoch]:
    epochs = []
    for epoch in run_epochs(config, "classification", resume):
        epochs.append(Epoch(dict(epoch.metrics), epoch.number, epoch.stop, epoch.last, epoch.state))
    return epochs


def state_after(config: dict[str, Any], epochs: int) -> TrainerState:
    generator = run_epochs({**config, "epochs": 8}, "classification", None)
    for epoch in generator:
        if epoch.number == epochs:
            state = copy.deepcopy(epoch.state())
            assert isinstance(generator, Generator)  # run_epochs is typed as an Iterator
            generator.close()
            return state
    raise AssertionError("never reached")


DONOR = {"optimizer": "momentum", "lr": 0.05, "dropout": 0.1, "epochs": 8, "hidden": 32}


def test_an_exploit_goes_on_from_the_donors_weights_with_the_new_values() -> None:
    donor_state = state_after(DONOR, 3)
    donor_epochs = train(DONOR)
    # Nearly no step at all: the first epoch after the exploit scores the donor's weights.
    frozen = train({**DONOR, "lr": 1e-9, "dropout": 0.3}, resume=donor_state)
    assert frozen[0].number == 4
    assert frozen[0].metrics["lr"] == pytest.approx(1e-9)
    assert frozen[0].metrics["val_loss"] == pytest.approx(
        donor_epochs[2].metrics["val_loss"], abs=1e-4
    )
    from_scratch = train({**DONOR, "lr": 1e-9, "epochs": 1})
    assert abs(from_scratch[0].metrics["val_loss"] - frozen[0].metrics["val_loss"]) > 0.5
    # The optimizer's momentum buffers came along; the new rate is in its groups.
    state = frozen[0].state()
    assert state.optimizer["state"], "momentum buffers kept"
    assert state.optimizer["param_groups"][0]["lr"] == pytest.approx(1e-9)
    assert state.knobs["dropout"] == 0.3


def test_a_new_rate_joins_its_schedule_where_the_checkpoint_left_it() -> None:
    one_cycle = {**DONOR, "lr_schedule": "one_cycle", "optimizer": "adam", "lr": 0.01}
    donor_state = state_after(one_cycle, 3)
    faster = {**one_cycle, "lr": 0.02}
    resumed = train(faster, resume=donor_state)
    straight = train(faster)
    assert [e.metrics["lr"] for e in resumed] == pytest.approx(
        [e.metrics["lr"] for e in straight[3:]]
    )
    # Another optimizer starts its own state afresh rather than fail on Adam's.
    switched = train({**one_cycle, "optimizer": "sgd"}, resume=donor_state)
    assert [e.number for e in switched] == [4, 5, 6, 7, 8]


# --- whole sweeps through the CLI ------------------------------------------------------------


def sweep_runs(tracking_uri: str, name: str) -> tuple[Any, list[Any]]:
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parent = next(run for run in runs if run.data.tags.get(TAG_ROLE) == "sweep")
    return parent, [r for r in runs if r.data.tags.get(TAG_PARENT) == parent.info.run_id]


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


@pytest.mark.e2e
def test_a_pbt_sweep_on_digits_shows_each_trials_schedule_in_mlflow(tmp_path: Path) -> None:
    # Two rates that learn nothing in a few epochs: the slow pair copies the fast pair.
    raw = pbt_sweep(
        name="digits-pbt",
        searcher={"kind": "random", "seed": 0},
        num_samples=1,
        params={
            "lr": {"type": "grid", "values": [1.0e-5, 2.0e-5, 0.05, 0.1]},
            "dropout": {"type": "float", "low": 0.0, "high": 0.3},
        },
        scheduler={
            "kind": "pbt",
            "perturbation_interval": 2,
            "mutations": {
                "lr": {"type": "float", "low": 1.0e-5, "high": 0.1, "log": True},
                "dropout": DROPOUT | {"high": 0.3},
            },
        },
        config={"epochs": 6, "optimizer": "momentum", "hidden": 32},
    )
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(raw))
    result = run_cli("run", "sweep.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # Ray's dozen lines per exploit stay out of the live table: MLflow holds them.
    assert "Remote file not found" not in result.stderr
    assert "[PopulationBasedTraining]" not in result.stdout + result.stderr
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    parent, runs = sweep_runs(uri, "digits-pbt")
    assert len(runs) == 4
    exploited = [run for run in runs if TAG_EXPLOIT in run.data.tags]
    assert exploited, "the slow trials copied a faster one"
    for run in runs:
        rates = history(client, run.info.run_id, "hp.lr")
        # One point per epoch, even where a trial jumped to another's checkpoint...
        assert [step for step, _ in rates] == sorted({step for step, _ in rates})
        # ...and the value each epoch trained with: the optimizer's own rate.
        trained = history(client, run.info.run_id, "lr")
        assert [step for step, _ in rates] == [step for step, _ in trained]
        assert [rate for _, rate in rates] == pytest.approx([rate for _, rate in trained])
        assert all(1.0e-5 <= rate <= 0.1 for _, rate in rates)
        assert all(0.0 <= p <= 0.3 for _, p in history(client, run.info.run_id, "hp.dropout"))
    for exploit in json.loads(exploited[0].data.tags[TAG_EXPLOIT]):
        assert exploit["from_trial"] in {run.data.tags["tuner.trial_id"] for run in runs}
        assert exploit["epoch"] == exploit["from_epoch"] + 1
    # The best weights' schedule, ready to paste, ends with the best trial's values.
    schedule = yaml.safe_load(parent.data.tags[TAG_SCHEDULE])["schedule"]
    assert min(schedule) == 1
    # Pasted under config, the trainer takes it as a fixed schedule.
    ClassifierKnobs.model_validate({**raw["config"], "schedule": schedule})
    best = client.get_run(parent.data.tags["tuner.best_run_id"])
    last_values = schedule[max(schedule)]
    assert last_values["lr"] == pytest.approx(history(client, best.info.run_id, "hp.lr")[-1][1])
    shown = run_cli("best", "digits-pbt", cwd=tmp_path, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "schedule (the values its weights were trained with, by first epoch; " in shown.stdout
    assert "    schedule:\n      1:\n" in shown.stdout


@pytest.mark.e2e
def test_a_users_trainable_goes_on_from_the_donors_checkpoint(tmp_path: Path) -> None:
    log, trace = tmp_path / "exploits.jsonl", tmp_path / "trace.jsonl"
    raw = {
        "name": "climbers",
        "trainable": "tests.trainables:pbt_climber",
        "metric": "score",
        "mode": "max",
        "searcher": {"kind": "grid"},
        "max_concurrent_trials": 2,
        "scheduler": {"kind": "pbt", "perturbation_interval": 2},
        "params": {"lr": {"type": "grid", "values": [0.01, 0.02, 0.3, 0.4]}},
        "config": {"epochs": 8, "exploit_log": str(log), "trace": str(trace)},
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(raw))
    result = run_cli("run", "sweep.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warning: max_concurrent_trials is no cap under pbt" in result.stdout + result.stderr
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    _, runs = sweep_runs(uri, "climbers")
    by_trial = {run.data.tags["tuner.trial_id"]: run for run in runs}
    exploits = [json.loads(line) for line in log.read_text().splitlines()]
    assert exploits, "the slow climbers copied a fast one"
    reported = [json.loads(line) for line in trace.read_text().splitlines()]
    for receiver, donor, epoch, position in exploits:
        # The position it took is one the donor reported at the epoch it copied.
        assert [donor, epoch, position] in reported
        tagged = json.loads(by_trial[receiver].data.tags[TAG_EXPLOIT])
        assert {"epoch": epoch + 1, "from_trial": donor, "from_epoch": epoch} in tagged
    for run in runs:
        # Every rate a trial trained with (as it read it) is a mutation's: in range.
        assert all(0.01 <= lr <= 0.4 for _, lr in history(client, run.info.run_id, "got_lr"))


@pytest.mark.e2e
def test_each_epochs_hp_point_is_the_value_that_epoch_trained_with(tmp_path: Path) -> None:
    # Ray 2.60 calls PBT's on_trial_result, which may give the trial a new config, before
    # the tracker's on_trial_result gets that same result: the point logged must be the
    # value the result was produced with (the config the worker reports with it).
    raw = {
        "name": "climbers-hp",
        "trainable": "tests.trainables:pbt_climber",
        "metric": "score",
        "mode": "max",
        "num_samples": 4,
        "searcher": {"kind": "random", "seed": 0},
        "scheduler": {"kind": "pbt", "perturbation_interval": 2},
        # Room above the population's rates: a trial that copies the fastest climber may
        # climb faster still, so the best trial's schedule tends to have exploits in it.
        "params": {"lr": {"type": "float", "low": 0.01, "high": 0.6}},
        "config": {
            "epochs": 8,
            "exploit_log": str(tmp_path / "exploits.jsonl"),
            "trace": str(tmp_path / "trace.jsonl"),
        },
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(raw))
    result = run_cli("run", "sweep.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    parent, runs = sweep_runs(uri, "climbers-hp")
    assert len(runs) == 4
    exploited = [run for run in runs if TAG_EXPLOIT in run.data.tags]
    assert exploited, "the slow climbers copied a fast one"
    for run in runs:
        seen = history(client, run.info.run_id, "got_lr")  # as the trainable read it
        assert [step for step, _ in seen] == list(range(1, 9))
        assert history(client, run.info.run_id, "hp.lr") == seen, run.data.tags
    # An exploit shows in the points as a new rate from its first epoch on, where the
    # trial had not trained that epoch already (MLflow keeps each epoch's first pass).
    changed = [
        r for r in exploited if len(set(dict(history(client, r.info.run_id, "hp.lr")).values())) > 1
    ]
    assert changed, "a trial's points show its rate changing at an exploit"
    # The best weights' schedule replays to the best score Ray saw: the climber's
    # position after epochs at rates r_1..r_8 is 1 - (1 - r_1) ... (1 - r_8).
    schedule = yaml.safe_load(parent.data.tags[TAG_SCHEDULE])["schedule"]
    rates = [schedule[max(e for e in schedule if e <= epoch)]["lr"] for epoch in range(1, 9)]
    best_score = parent.data.metrics["best_score"]
    assert 1.0 - math.prod(1.0 - rate for rate in rates) == pytest.approx(best_score, rel=1e-9)


def test_a_fixed_schedule_changes_the_values_at_its_epochs() -> None:
    schedule = {1: {"lr": 0.05}, 4: {"lr": 0.01, "dropout": 0.2}, 6: {"lr": 0.002}}
    epochs = train({**DONOR, "schedule": schedule})
    rates = [e.metrics["lr"] for e in epochs]
    assert rates == pytest.approx([0.05] * 3 + [0.01] * 2 + [0.002] * 3)
    # Up to the first change it is the run without a schedule, weight for weight.
    plain = train({**DONOR, "epochs": 3})
    assert [e.metrics["val_loss"] for e in epochs[:3]] == [e.metrics["val_loss"] for e in plain]
    # The segment from epoch 4 is the exploit path: the state at 3, the new values.
    resumed = train({**DONOR, "lr": 0.01, "dropout": 0.2}, resume=state_after(DONOR, 3))
    assert epochs[3].metrics["val_loss"] == pytest.approx(resumed[0].metrics["val_loss"])


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ({3: {"hidden": 8}}, "schedule: 'hidden' cannot change while a trial trains"),
        ({30: {"lr": 0.1}}, "schedule: epoch 30 is after the last epoch (8)"),
        ({3: {"lr": -1}}, "schedule: epoch 3: lr: Input should be greater than 0"),
    ],
)
def test_a_schedule_the_trainer_cannot_follow_is_refused(
    schedule: dict[int, Any], problem: str
) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as raised:
        ClassifierKnobs.model_validate({**DONOR, "schedule": schedule})
    assert problem in str(raised.value)


@pytest.mark.e2e
def test_an_interrupted_pbt_sweep_resumes_with_its_population(tmp_path: Path) -> None:
    started = tmp_path / "started"
    raw = {
        "name": "climbers-resumed",
        "trainable": "tests.trainables:pbt_climber",
        "metric": "score",
        "mode": "max",
        "searcher": {"kind": "grid"},
        "scheduler": {"kind": "pbt", "perturbation_interval": 2},
        "params": {"lr": {"type": "grid", "values": [0.01, 0.02, 0.3, 0.4]}},
        "config": {
            "epochs": 8,
            "exploit_log": str(tmp_path / "exploits.jsonl"),
            "trace": str(tmp_path / "trace.jsonl"),
            "started": str(started),
        },
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(raw))
    cut = run_and_signal(tmp_path, started, signal.SIGINT, "run", "sweep.yaml")
    assert cut.returncode == 130, cut.stderr[-3000:]
    resumed = run_cli("resume", "climbers-resumed", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "4 trials: 4 finished" in resumed.stdout
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    parent, runs = sweep_runs(uri, "climbers-resumed")
    assert len(runs) == 4 and {run.info.status for run in runs} == {"FINISHED"}
    for run in runs:
        steps = [step for step, _ in history(client, run.info.run_id, "score")]
        assert steps == sorted(set(steps)) and max(steps) == 8, "each epoch once, to the end"
    schedule = yaml.safe_load(parent.data.tags[TAG_SCHEDULE])["schedule"]
    assert min(schedule) == 1 and all(0.01 <= v["lr"] <= 0.4 for v in schedule.values())
