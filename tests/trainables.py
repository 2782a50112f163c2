"""Trainables used by the tests, imported by Ray workers as user code would be."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray import tune

from tuner.trainer.checkpoint_policy import PLAN_KEY, CheckpointPlan
from tuner.trainer.classifier import train_classifier

TEST_KEYS = ("crash_after_epoch", "crash_marker")


def crash_once_after(config: dict[str, Any]) -> None:
    """The built-in classifier, dying once right after reporting `crash_after_epoch`.

    It checkpoints every epoch, so the restart resumes right after the crash."""
    crash_epoch = int(config["crash_after_epoch"])
    marker = Path(config["crash_marker"])
    knobs = {key: value for key, value in config.items() if key not in TEST_KEYS}
    knobs[PLAN_KEY] = CheckpointPlan(every_epochs=1, min_interval_s=0).as_config()
    real_report = tune.report

    def report(metrics: dict[str, Any], *, checkpoint: Any = None) -> None:
        real_report(metrics, checkpoint=checkpoint)
        if metrics["epoch"] == crash_epoch and not marker.exists():
            marker.write_text("crashed once")
            raise RuntimeError(f"injected crash after epoch {crash_epoch}")

    tune.report = report  # the trainer calls ray.tune.report through the module
    try:
        train_classifier(knobs)
    finally:
        tune.report = real_report


def report_twice(config: dict[str, Any]) -> None:
    """A user trainable: the documented contract, no checkpoint."""
    for epoch in (1, 2):
        tune.report({"epoch": epoch, "score": config["x"] * epoch})


def one_param_matters(config: dict[str, Any]) -> None:
    """A user trainable whose score depends on x alone (peak at 0.3); y is noise-free
    decoration. A sweep's importances must name x."""
    for epoch in range(1, config.get("epochs", 4) + 1):
        score = 1.0 - (config["x"] - 0.3) ** 2 - 0.5 / epoch
        tune.report({"epoch": epoch, "score": score})


def config_digest(value: Any) -> str:
    """How `secrets_received` tells a test which values it got, without writing them."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def secrets_received(config: dict[str, Any]) -> None:
    """A user trainable that needs secrets: `received` is 1.0 when every config key in
    `expect` ([[key, digest], ...]) arrived with the value of that digest. It prints its
    config, as many a training script does first."""
    import sys

    print(f"config: {config}")
    print(f"token: {config['api_token']}", file=sys.stderr)
    received = all(config_digest(config.get(key)) == digest for key, digest in config["expect"])
    tune.report({"received": float(received), "x": float(config["x"])})


def secrets_received_on_workers(config: dict[str, Any]) -> None:
    """`secrets_received` as each worker of a multi-worker trial runs it: printing its
    config, reporting with Ray Train's call, every worker."""
    import sys

    import ray.train

    print(f"config: {config}")
    print(f"token: {config['api_token']}", file=sys.stderr)
    received = all(config_digest(config.get(key)) == digest for key, digest in config["expect"])
    ray.train.report({"received": float(received)})


class SecretsReceived(tune.Trainable):
    """The same check in a class Trainable: what setup() receives."""

    def setup(self, config: dict[str, Any]) -> None:
        print(f"config: {config}")
        self.received = all(
            config_digest(config.get(key)) == digest for key, digest in config["expect"]
        )

    def step(self) -> dict[str, Any]:
        return {"received": float(self.received), "done": True}


def slow_epochs(config: dict[str, Any]) -> None:
    """A user trainable that takes 0.2 s per epoch: long enough to be cut by a budget."""
    import time

    for epoch in range(1, int(config.get("epochs", 100)) + 1):
        time.sleep(0.2)
        tune.report({"epoch": epoch, "score": config["x"] * epoch})


def conditional_score(config: dict[str, Any]) -> None:
    """A user trainable over a conditional space: it reports which params it received,
    so a test sees what reached the trial's process, not only what MLflow holds."""
    momentum = config.get("momentum", 0.0)
    for epoch in range(1, 3):
        score = config["lr"] * (1 + momentum) + (0.1 if config.get("nesterov") else 0.0)
        tune.report(
            {
                "epoch": epoch,
                "score": score * epoch,
                "got_momentum": float("momentum" in config),
                "got_nesterov": float("nesterov" in config),
                "got_beta1": float("beta1" in config),
            }
        )


def two_objectives(config: dict[str, Any]) -> None:
    """Quality peaks at x = 0.3 and grows with training; size is y; latency is 10 x.
    Quality and size trade off only through y's bonus, so the front has several trials.
    With `fail_after_epoch`, a trial that goes on past that epoch fails."""
    for epoch in range(1, config.get("epochs", 3) + 1):
        if epoch > config.get("fail_after_epoch", epoch):
            raise RuntimeError(f"injected failure in epoch {epoch}")
        quality = 1.0 - (config["x"] - 0.3) ** 2 + 0.05 * config["y"] - 0.5 / epoch
        tune.report(
            {"epoch": epoch, "quality": quality, "size": config["y"], "latency": 10 * config["x"]}
        )


def pbt_climber(config: dict[str, Any]) -> None:
    """A user trainable under population-based training, following the documented
    contract: it reads its config after `tune.get_checkpoint()` (an exploit brings
    another trial's checkpoint and new values), and reports a checkpoint at least at
    every multiple of the perturbation interval. Its "weights" are one number that climbs
    towards 1 at the rate `lr`; after an exploit it writes whose position it took to
    `config["exploit_log"]`, and every position it reports to `config["trace"]`, so a
    test can check the one against the donor's."""
    import json
    import tempfile
    import time

    def record(path: str, line: list[Any]) -> None:
        with open(path, "a") as log:
            log.write(json.dumps(line) + "\n")

    me = tune.get_context().get_trial_id()
    position, epoch = 0.0, 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            saved = json.loads((Path(directory) / "state.json").read_text())
        position, epoch = saved["position"], saved["epoch"]
        if saved["trial_id"] != me:  # an exploit: say whose position this trial took
            record(config["exploit_log"], [me, saved["trial_id"], epoch, position])
    lr = float(config["lr"])  # read after the restore: PBT may have changed it
    while epoch < int(config.get("epochs", 8)):
        epoch += 1
        if "started" in config:  # a test waits for this, then interrupts the sweep
            Path(config["started"]).touch()
            time.sleep(0.2)
        position += lr * (1.0 - position)
        metrics = {"epoch": epoch, "score": position, "got_lr": lr}
        # Every pass, also epochs trained again after an exploit (MLflow keeps the first).
        record(config["trace"], [me, epoch, position])
        with tempfile.TemporaryDirectory() as directory:
            state = {"position": position, "epoch": epoch, "trial_id": me}
            (Path(directory) / "state.json").write_text(json.dumps(state))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def smooth_peak(config: dict[str, Any]) -> None:
    """One result: a smooth bowl whose top a few dozen trials find (stop_when stops)."""
    tune.report({"score": 1.0 - (config["x"] - 0.5) ** 2 - (config["y"] - 0.5) ** 2})


def rugged(config: dict[str, Any]) -> None:
    """One result: a rugged surface with much left to find (stop_when does not stop)."""
    import math

    tune.report(
        {"score": math.sin(40 * config["x"]) * math.cos(37 * config["y"]) + 3 * config["x"]}
    )


def checkpoints_on_notice(config: dict[str, Any]) -> None:
    """A trainable of your own that checkpoints when a spot notice asks (the README's
    example): many short steps, a checkpoint only when `tuner.should_checkpoint()`."""
    import json
    import tempfile
    import time

    import tuner

    step = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            step = json.loads(Path(folder, "state.json").read_text())["step"]
    log = Path(config["log"])
    while step < config["steps"]:
        step += 1
        time.sleep(config["step_seconds"])
        with log.open("a") as lines:
            lines.write(f"step {step}\n")
        if not tuner.should_checkpoint():
            tune.report({"step": step, "score": step})
            continue
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "state.json").write_text(json.dumps({"step": step}))
            tune.report(
                {"step": step, "score": step}, checkpoint=tune.Checkpoint.from_directory(folder)
            )
        with log.open("a") as lines:
            lines.write(f"checkpoint {step}\n")


PAUSE_KEYS = ("pause_after_epoch", "pause_marker")
# The epoch's checkpoint reaches Tune a moment after the workers' report (Train persists
# it, its controller relays it, the trial copies it into its storage): over 1 s on the
# loaded 2-core machine. The marker waits that long, so a signal after it lands after it.
LAG_S = 5.0


def classifier_pausing_once(config: dict[str, Any]) -> None:
    """A per-worker function: the built-in classifier's worker, checkpointing every epoch,
    that waits after reporting epoch `pause_after_epoch` (0: never) until killed, rank 0
    having touched `pause_marker`; once the marker exists it runs straight through.

    A signal sent after the marker lands after that epoch's checkpoint: the resumed trial
    goes on from there (`ray.train.get_checkpoint()`), rank 0 writing the epoch it
    resumed from to `<pause_marker>.resumed`."""
    import time

    import ray.train

    from tuner.trainer.classifier import train_classifier_worker
    from tuner.trainer.ddp_trial import restored

    marker = Path(config["pause_marker"])
    pause_epoch = int(config["pause_after_epoch"]) if not marker.exists() else 0
    knobs = {key: value for key, value in config.items() if key not in PAUSE_KEYS}
    knobs[PLAN_KEY] = CheckpointPlan(every_epochs=1, min_interval_s=0).as_config()
    real_report = ray.train.report

    def report(metrics: dict[str, Any], checkpoint: Any = None) -> None:
        real_report(metrics, checkpoint=checkpoint)
        if metrics["epoch"] == pause_epoch:
            time.sleep(LAG_S)
            if ray.train.get_context().get_world_rank() == 0:
                marker.write_text(f"paused after epoch {pause_epoch}")
            time.sleep(600)

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None and ray.train.get_context().get_world_rank() == 0:
        resumed = restored(checkpoint)
        assert resumed is not None, "a checkpoint holds a trainer state"
        Path(f"{marker}.resumed").write_text(str(resumed.epoch))
    ray.train.report = report  # the worker calls ray.train.report through the module
    try:
        train_classifier_worker({"config": knobs, "checkpoint": checkpoint})
    finally:
        ray.train.report = real_report


def scored_or_failing(config: dict[str, Any]) -> None:
    """Reports `score` = x x epoch, each epoch `epoch_s` seconds long; a negative x fails
    before its first report."""
    import time

    if config["x"] < 0:
        raise RuntimeError("injected failure")
    for epoch in range(1, config.get("epochs", 3) + 1):
        time.sleep(config.get("epoch_s", 0.0))
        tune.report({"epoch": epoch, "score": config["x"] * epoch})


def reports_pid(config: dict[str, Any]) -> None:
    """Reports the process it ran in (`worker_pid`), and `score` = x."""
    import os

    tune.report({"epoch": 1, "score": config["x"], "worker_pid": os.getpid()})


def quick_then_slow(config: dict[str, Any]) -> None:
    """Reports x at once; the few trials that start after `quick` others take seconds
    and touch `started` first, so that a signal lands in a sweep well under way."""
    import time

    count = Path(config["count"])
    with count.open("a") as log:
        log.write("started\n")
    started = len(count.read_text().splitlines())
    if config["quick"] < started <= config["quick"] + 4:
        Path(config["started"]).touch()
        time.sleep(3)
    tune.report({"score": config["x"]})


def diverges(config: dict[str, Any]) -> None:
    """Reports `score` = x x epoch and `size` = x; an x over 0.7 diverges: its `score` is
    NaN from the second epoch on (infinite for an x over 0.85), as a model whose loss
    blew up."""
    for epoch in range(1, config.get("epochs", 2) + 1):
        score = config["x"] * epoch
        if config["x"] > 0.7 and epoch >= 2:
            score = float("inf") if config["x"] > 0.85 else float("nan")
        tune.report({"epoch": epoch, "score": score, "size": config["x"]})


def scores_then_fails(config: dict[str, Any]) -> None:
    """Reports `score` = x x epoch; an x over 0.8 fails in its second epoch, after a
    first score better than any other trial's last."""
    for epoch in range(1, config.get("epochs", 2) + 1):
        if config["x"] > 0.8 and epoch == 2:
            raise RuntimeError("diverged")
        tune.report({"epoch": epoch, "score": config["x"] * (epoch if config["x"] < 0.8 else 9)})


def checkpointed_epochs(config: dict[str, Any]) -> None:
    """A user trainable checkpointing each 0.3 s epoch as `state.json`, that resumes from
    its checkpoint (writing the epoch it resumed after to `<started>.resumed-<x>`) and
    touches `started` after epoch 3, so that a signal lands mid-sweep."""
    import json
    import tempfile
    import time

    started = Path(config["started"])
    first = 1
    if (checkpoint := tune.get_checkpoint()) is not None:
        with checkpoint.as_directory() as folder:
            first = json.loads((Path(folder) / "state.json").read_text())["epoch"] + 1
    Path(f"{started}.resumed-{config['x']}").write_text(str(first - 1))
    for epoch in range(first, int(config["epochs"]) + 1):
        time.sleep(0.3)
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "state.json").write_text(json.dumps({"epoch": epoch}))
            saved = tune.Checkpoint.from_directory(folder)
            tune.report({"epoch": epoch, "score": config["x"] * epoch}, checkpoint=saved)
        if epoch == 3:
            started.touch()
