"""Lost work per spot preemption: today's per-epoch checkpoints vs checkpoint-on-notice.

    python -m bench.preemption                  # epochs of 1 s, 30 s and 300 s (~25 min)
    python -m bench.preemption --smoke          # epochs of 1 s

A loopback Ray cluster (a head with no CPUs, one 1-CPU worker) runs one trial of a
slowed trainer: epochs of sleeping steps (100 steps of 10 ms for a 1 s epoch, steps of
100 ms above that), a checkpoint at each epoch's end (the best case of a per-epoch
policy), and `tuner.should_checkpoint()` asked at every step. Halfway through the first
epoch EC2 "announces" the interruption:

- per-epoch only: the watcher drains the node at once (tuner before checkpoint-on-notice);
- on notice: the watcher tells the trial (tuner.cluster.preemption.TrialWarning), which
  checkpoints at its next step and then waits, and drains once it has.

Then the node goes, its trial stopped all at once: here at once, or for per-epoch
checkpoints once the trial is in the second half of an epoch again, since `ray drain-node`
takes seconds (EC2 waits until its deadline, 2 minutes on, which only adds to what
per-epoch checkpoints lose). A new worker joins. Lost work is measured from the trainer's
own log: the seconds of steps it trained twice. The restarted trial ends once it is past
the furthest step trained before: the rest measures nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.common import RESULTS, machine, write

POLICIES = ("per-epoch only", "on notice")


def slowed_trainer(config: dict[str, Any]) -> None:
    """Epochs of `steps` sleeping steps; logs "attempt epoch step seconds" per step."""
    from ray import tune

    import tuner

    epoch, step = 1, 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            epoch, step = json.loads(Path(folder, "at.json").read_text())
    log = Path(config["log"])
    # The furthest (epoch, step) trained before a restart; None on the first attempt.
    before = (
        max(
            (
                (int(e), int(s))
                for _pid, e, s, _took in map(str.split, log.read_text().splitlines())
            ),
            default=None,
        )
        if log.exists()
        else None
    )

    def report(metrics: dict[str, Any], at: tuple[int, int]) -> None:
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "at.json").write_text(json.dumps(at))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    while epoch <= config["epochs"]:
        while step < config["steps"]:
            step += 1
            time.sleep(config["step_s"])
            with log.open("a") as lines:
                lines.write(f"{os.getpid()} {epoch} {step} {config['step_s']}\n")
            if before is not None and (epoch, step) > before:
                return
            if config["on_notice"] and tuner.should_checkpoint():
                report({"epoch": epoch - 1 + step / config["steps"]}, (epoch, step))
                tuner.should_checkpoint()  # says it is saved
                time.sleep(3600)  # as the built-in trainer: wait for the node to go
        epoch, step = epoch + 1, 0
        report({"epoch": epoch - 1}, (epoch, step))


def lost_seconds(log: Path) -> float:
    """Seconds of steps trained more than once."""
    seen: set[tuple[str, str]] = set()
    lost = 0.0
    for line in log.read_text().splitlines():
        _, epoch, step, seconds = line.split()
        if (epoch, step) in seen:
            lost += float(seconds)
        seen.add((epoch, step))
    return lost


def whole_lines(log: Path) -> list[str]:
    # The trainer may be halfway through writing the last one.
    return log.read_text().rpartition("\n")[0].splitlines()


def latest_pid(log: Path) -> int:
    return int(whole_lines(log)[-1].split()[0])


def wait_for_second_half(log: Path, steps: int) -> None:
    """Until the trainer's latest step is in the second half of an epoch, short of its
    last fifth: one seen at its last step may already have reported the next epoch's
    checkpoint, and then no work is lost (seen once in CI, on a loaded machine, where
    this poll woke late)."""
    while True:
        lines = whole_lines(log)
        if lines and steps // 2 <= int(lines[-1].split()[2]) < steps * 4 // 5:
            return
        time.sleep(0.005)


def preempt_once(epoch_s: float, on_notice: bool, folder: Path) -> dict[str, float]:
    import ray
    from ray import tune
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    from tuner.cluster.preemption import Notice, TrialWarning, drain_with_ray
    from tuner.engine.session import use_token_auth_if_available

    # Every node on 127.0.0.1: Ray would otherwise rewrite it to the outbound
    # interface's address when connecting (the tests do the same).
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # `ray drain-node` too
    # The watcher opts in to token auth when a token is at hand; the nodes must agree,
    # or the node that replaces the lost one cannot serve the restarted trial.
    use_token_auth_if_available()
    step_s = 0.01 if epoch_s < 10 else 0.1
    steps = round(epoch_s / step_s)
    epochs = 1 + math.ceil(60 / epoch_s)  # still training when the node goes
    name = f"preempt-{secrets.token_hex(3)}"
    # One log per round: a restarted trial reads its own attempt's steps, no other round's.
    log = folder / f"{name}-{epoch_s:g}-{'notice' if on_notice else 'epoch'}.log"
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False},
    )
    worker = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    ray.init(address=cluster.address, log_to_driver=False)
    figures: dict[str, float] = {}
    try:
        trials = TrialWarning(cluster.address, worker.node_id, grace_s=60)
        trials.connect(print)  # the watcher is up before the trial, as on a booted node

        tuner = tune.Tuner(
            tune.with_resources(slowed_trainer, {"cpu": 1}),
            param_space={
                "epochs": epochs,
                "steps": steps,
                "step_s": step_s,
                "log": str(log),
                "on_notice": on_notice,
            },
            run_config=tune.RunConfig(
                name=name,
                storage_path=str(folder / "runs"),
                failure_config=tune.FailureConfig(max_failures=3),
                verbose=0,
            ),
        )
        outcome: list[Any] = []
        # Tune in a thread: adding and removing nodes needs the main thread.
        fit = threading.Thread(target=lambda: outcome.append(tuner.fit()), daemon=True)
        fit.start()
        half = f" 1 {steps // 2} "
        while not (log.exists() and half in log.read_text()):
            time.sleep(0.05)
        notice = Notice("terminate", datetime.now(timezone.utc) + timedelta(minutes=2))
        started = time.monotonic()
        if on_notice:
            trials.warn(notice, print)
        drain_with_ray(cluster.address, worker.node_id)(notice)
        figures["notice_to_drained_s"] = time.monotonic() - started
        if not on_notice:
            # `ray drain-node` takes seconds, so a 1 s epoch's trial is anywhere by now:
            # EC2 takes the node mid-epoch, as at a random moment on average.
            wait_for_second_half(log, steps)
        # EC2 takes the node. Removing a Ray node takes seconds (more on a busy machine),
        # in which the trial would go on training: the machine stops here, all at once.
        trainer = latest_pid(log)
        os.kill(trainer, signal.SIGSTOP)
        cluster.remove_node(worker, allow_graceful=False)
        os.kill(trainer, signal.SIGKILL)  # a stopped process never sees its raylet go
        cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")  # and a new one joins
        fit.join()
        (trial,) = list(outcome[0])
        assert trial.error is None, trial.error
        figures["lost_s"] = lost_seconds(log)
    finally:
        ray.shutdown()
        cluster.shutdown()
    return figures


def run(epoch_seconds: Sequence[float], rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine(), "rounds": rounds, "epochs": {}}
    with tempfile.TemporaryDirectory(prefix="bench-preemption-") as scratch:
        for epoch_s in epoch_seconds:
            per_policy: dict[str, Any] = {}
            for policy in POLICIES:
                runs = [
                    preempt_once(epoch_s, policy == "on notice", Path(scratch))
                    for _ in range(rounds)
                ]
                per_policy[policy] = {
                    "runs": runs,
                    "median_lost_s": statistics.median(r["lost_s"] for r in runs),
                    "median_notice_to_drained_s": statistics.median(
                        r["notice_to_drained_s"] for r in runs
                    ),
                }
            results["epochs"][f"{epoch_s:g}"] = per_policy
    return results


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        ("epoch", "policy", "lost work s (median)", "notice to drained s", "share of an epoch")
    ]
    for epoch_s, per_policy in result["epochs"].items():
        for policy, figures in per_policy.items():
            rows.append(
                (
                    f"{epoch_s} s",
                    policy,
                    f"{figures['median_lost_s']:.2f}",
                    f"{figures['median_notice_to_drained_s']:.2f}",
                    f"{figures['median_lost_s'] / float(epoch_s):.1%}",
                )
            )
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epoch-seconds", type=float, nargs="+", default=[1.0, 30.0, 300.0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="epochs of 1 s, one round")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    epochs = [1.0] if args.smoke else args.epoch_seconds
    result = run(epochs, 1 if args.smoke else args.rounds)
    return write(
        "preemption-smoke" if args.smoke else "preemption", result, table(result), args.out
    )


if __name__ == "__main__":
    main()
