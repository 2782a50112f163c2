"""Search on a conditional space: regret against cumulative cost, conditional vs flat.

    python -m bench.search_conditional           # 20 seeds, a budget of 40 full evaluations
    python -m bench.search_conditional --smoke   # 2 seeds, a budget of 4

The function is bench.search's multi-fidelity Hartmann-6, behind a categorical `branch`:
under `full` all six inputs matter; under `half` only x1..x3 do (x4..x6 sit at 0.5,
whatever was sampled), and its best is worse (-1.09 against -3.32). Half the
dimensions matter only under one branch of a categorical. The clock is simulated in
epochs, as in bench.search. Systems:
- tuner TPE + ASHA on the conditional space (x4..x6 `when: {branch: [full]}`);
- tuner TPE + ASHA on the flat space (x4..x6 always sampled), the same sweep otherwise;
- plain Optuna, the same TPE on the conditional space, no early stopping, one process;
- random search on the flat space, no early stopping.
The target: the conditional sweep reaches the flat sweep's final regret >= 1.5x cheaper.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from ray import tune

from bench.common import RESULTS, machine, ray_for, write
from bench.search import MAX_T, Trace, cost_to, hartmann, quartiles

SHARED = ["x1", "x2", "x3"]
FULL_ONLY = ["x4", "x5", "x6"]
BRANCHES = ["full", "half"]


def point(config: dict[str, Any]) -> list[float]:
    """The Hartmann input a configuration evaluates: `half` pins x4..x6 at 0.5."""
    shared = [float(config[name]) for name in SHARED]
    if config["branch"] == "half":
        return [*shared, 0.5, 0.5, 0.5]
    return [*shared, *(float(config[name]) for name in FULL_ONLY)]


def branchy_trainable(config: dict[str, Any]) -> None:
    x = point(config)
    for epoch in range(1, MAX_T + 1):
        tune.report({"epoch": epoch, "loss": hartmann(x, epoch / MAX_T)})


class Recorder(tune.Callback):  # type: ignore[misc]
    def __init__(self, trace: Trace) -> None:
        self.trace = trace

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        self.trace.epoch(point(trial.config), int(result["epoch"]))


def space(conditional: bool) -> dict[str, Any]:
    unit = {"type": "float", "low": 0.0, "high": 1.0}
    when = {"when": {"branch": ["full"]}} if conditional else {}
    return {
        "branch": {"type": "categorical", "choices": BRANCHES},
        **{name: unit for name in SHARED},
        **{name: {**unit, **when} for name in FULL_ONLY},
    }


def tuner_system(conditional: bool, seed: int, budget: int, concurrency: int) -> Trace:
    from tuner.engine.experiments import Experiment
    from tuner.engine.storage import resolve_storage
    from tuner.engine.tuner_factory import build_tuner
    from tuner.search.early_stops import EarlyStops
    from tuner.spec import parse_spec

    spec = parse_spec(
        {
            "name": f"branchy-{'conditional' if conditional else 'flat'}-{seed}",
            "trainable": "bench.search_conditional:branchy_trainable",
            "metric": "loss",
            "mode": "min",
            "num_samples": max(8, budget // 2),
            "searcher": {"kind": "optuna", "sampler": "tpe", "seed": seed},
            "scheduler": {"kind": "asha", "max_t": MAX_T, "grace_period": 1, "reduction_factor": 3},
            "max_concurrent_trials": concurrency,
            "params": space(conditional),
        }
    )
    trace = Trace()
    with tempfile.TemporaryDirectory(prefix="bench-conditional-") as folder:
        experiment = Experiment.new(resolve_storage(folder), spec.name)
        tuner = build_tuner(
            spec,
            experiment,
            [Recorder(trace)],
            EarlyStops.shared(experiment.uri),
            withheld={},
            on_cluster=False,
        )
        tuner.fit()
    return trace


def optuna_conditional_tpe(seed: int, budget: int) -> Trace:
    """Plain Optuna with tuner's sampler for conditional spaces, every trial to the end."""
    from tuner.search.optuna_search import conditional_tpe

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trace = Trace()
    study = optuna.create_study(direction="minimize", sampler=conditional_tpe(seed))

    def objective(trial: optuna.Trial) -> float:
        config: dict[str, Any] = {"branch": trial.suggest_categorical("branch", BRANCHES)}
        names = SHARED + (FULL_ONLY if config["branch"] == "full" else [])
        config.update({name: trial.suggest_float(name, 0.0, 1.0) for name in names})
        x = point(config)
        for epoch in range(1, MAX_T + 1):
            trace.epoch(x, epoch)
        return hartmann(x)

    while trace.cost < budget:
        study.optimize(objective, n_trials=1)
    return trace


def random_flat(seed: int, budget: int) -> Trace:
    rng = np.random.default_rng(seed)
    trace = Trace()
    while trace.cost < budget:
        config: dict[str, Any] = {"branch": BRANCHES[int(rng.integers(2))]}
        config.update({name: rng.uniform() for name in SHARED + FULL_ONLY})
        for epoch in range(1, MAX_T + 1):
            trace.epoch(point(config), epoch)
    return trace


SYSTEMS = (
    "tuner TPE + ASHA, conditional space",
    "tuner TPE + ASHA, flat space",
    "optuna TPE, conditional space, no early stopping",
    "random, flat space, no early stopping",
)


def run(seeds: int, budget_full: int, concurrency: int) -> dict[str, Any]:
    from tuner.engine.session import quiet_driver_output

    quiet_driver_output()
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    budget = budget_full * MAX_T
    traces: dict[str, list[Trace]] = {name: [] for name in SYSTEMS}
    with ray_for({}, "ray"):
        for seed in range(seeds):
            traces[SYSTEMS[0]].append(tuner_system(True, seed, budget, concurrency))
            traces[SYSTEMS[1]].append(tuner_system(False, seed, budget, concurrency))
            traces[SYSTEMS[2]].append(optuna_conditional_tpe(seed, budget))
            traces[SYSTEMS[3]].append(random_flat(seed, budget))
    checkpoints = [budget // 8, budget // 4, budget // 2, budget]
    # The target: the flat sweep's final median regret.
    target = statistics.median(t.regret_at(budget) for t in traces[SYSTEMS[1]])
    summary: dict[str, Any] = {}
    for name, runs in traces.items():
        regrets = {str(c): [t.regret_at(c) for t in runs] for c in checkpoints}
        summary[name] = {
            "median_regret": {c: statistics.median(r) for c, r in regrets.items()},
            "quartiles_regret": {c: quartiles(r) for c, r in regrets.items()},
            "regret_per_seed": regrets,
            "median_cost_to_target": cost_to(runs, target, budget),
        }
    flat = summary[SYSTEMS[1]]["median_cost_to_target"]
    for name in SYSTEMS:
        summary[name]["cheaper_than_flat"] = flat / summary[name]["median_cost_to_target"]
    return {
        "machine": machine(),
        "seeds": seeds,
        "max_t": MAX_T,
        "budget_epochs": budget,
        "budget_full_evaluations": budget_full,
        "tuner_concurrent_trials": concurrency,
        "target_regret": target,
        "checkpoints_epochs": checkpoints,
        "systems": summary,
    }


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    checkpoints = [str(c) for c in result["checkpoints_epochs"]]
    header = (
        "system",
        *(f"regret @ {c} epochs" for c in checkpoints),
        f"epochs to regret {result['target_regret']:.3f}",
        "x cheaper than flat",
    )
    rows: list[tuple[str, ...]] = [header]
    for name, figures in result["systems"].items():
        cells = []
        for c in checkpoints:
            low, high = figures["quartiles_regret"][c]
            cells.append(f"{figures['median_regret'][c]:.3f} [{low:.3f}, {high:.3f}]")
        rows.append(
            (
                name,
                *cells,
                f"{figures['median_cost_to_target']:.0f}",
                f"{figures['cheaper_than_flat']:.1f}",
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=40, help="in full evaluations")
    parser.add_argument("--concurrency", type=int, default=2, help="tuner's trials at a time")
    parser.add_argument("--smoke", action="store_true", help="2 seeds, a budget of 4")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.seeds, args.budget = 2, 4
    result = run(args.seeds, args.budget, args.concurrency)
    name = "search-conditional-smoke" if args.smoke else "search-conditional"
    return write(name, result, table(result), args.out)


if __name__ == "__main__":
    main()
