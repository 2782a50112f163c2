"""Search efficiency: simple regret against cumulative cost on multi-fidelity Hartmann-6.

    python -m bench.search              # 20 seeds, a budget of 40 full evaluations
    python -m bench.search --smoke      # 2 seeds, a budget of 4: checks that it works

The function is the augmented Hartmann-6 of BoTorch (Kandasamy et al.'s multi-fidelity
variant): six inputs in [0, 1], minimum -3.32237, and a fidelity s in [0, 1] that
shifts the first mixture weight by 0.1 (1 - s). A trial's epoch e of MAX_T evaluates
it at s = e / MAX_T, so an epoch is a unit of cost and a trial run to the end costs
MAX_T. The clock is simulated: cost is counted in epochs, in the order the system
produced them, so the figures do not depend on this machine's speed.

Simple regret at a cost is f(x, 1) - f* for the best configuration the system has
trained to full fidelity by then (a model a user could take). Systems:
- tuner, TPE + ASHA, and random + ASHA: tuner's own searchers and schedulers, built from
  a sweep file by tuner.engine.tuner_factory.build_tuner and run by Ray Tune (2 trials at a time);
  MLflow is left out, since it does not change which configurations run;
- plain Optuna, TPE + SuccessiveHalvingPruner, in one process;
- random search without early stopping.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from ray import tune

from bench.common import RESULTS, machine, ray_for, write

MAX_T = 27  # epochs: ASHA rungs at 1, 3, 9, 27 with reduction factor 3
F_STAR = -3.32237
DIMS = [f"x{i}" for i in range(1, 7)]
ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def hartmann(x: Sequence[float], fidelity: float = 1.0) -> float:
    alpha = ALPHA.copy()
    alpha[0] -= 0.1 * (1.0 - fidelity)
    inner = np.sum(A * (np.asarray(x) - P) ** 2, axis=1)
    return float(-np.sum(alpha * np.exp(-inner)))


def point(config: dict[str, Any]) -> list[float]:
    return [float(config[name]) for name in DIMS]


def hartmann_trainable(config: dict[str, Any]) -> None:
    """A 'training run' whose loss after epoch e is Hartmann-6 at fidelity e / MAX_T."""
    x = point(config)
    for epoch in range(1, MAX_T + 1):
        tune.report({"epoch": epoch, "loss": hartmann(x, epoch / MAX_T)})


class Trace:
    """Cumulative cost and the true regret of the best fully trained configuration."""

    def __init__(self) -> None:
        self.cost = 0
        self.best = math.inf
        self.points: list[tuple[int, float]] = []  # (cost, regret) whenever regret drops

    def epoch(self, x: list[float], epoch: int) -> None:
        self.cost += 1
        if epoch == MAX_T:
            value = hartmann(x, 1.0)
            if value < self.best:
                self.best = value
                self.points.append((self.cost, value - F_STAR))

    def regret_at(self, cost: float) -> float:
        regret = math.inf
        for spent, value in self.points:
            if spent > cost:
                break
            regret = value
        return regret


class Recorder(tune.Callback):  # type: ignore[misc]
    def __init__(self, trace: Trace) -> None:
        self.trace = trace

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        self.trace.epoch(point(trial.config), int(result["epoch"]))


def tuner_system(searcher: dict[str, Any], seed: int, budget: int, concurrency: int) -> Trace:
    from tuner.engine.experiments import Experiment
    from tuner.engine.storage import resolve_storage
    from tuner.engine.tuner_factory import build_tuner
    from tuner.search.early_stops import EarlyStops
    from tuner.spec import parse_spec

    spec = parse_spec(
        {
            "name": f"hartmann-{searcher['kind']}-{seed}",
            "trainable": "bench.search:hartmann_trainable",
            "metric": "loss",
            "mode": "min",
            # ASHA spends about 3 epochs per trial here; enough trials to spend the budget.
            "num_samples": max(8, budget // 2),
            "searcher": {**searcher, "seed": seed},
            "scheduler": {"kind": "asha", "max_t": MAX_T, "grace_period": 1, "reduction_factor": 3},
            "max_concurrent_trials": concurrency,
            "params": {name: {"type": "float", "low": 0.0, "high": 1.0} for name in DIMS},
        }
    )
    trace = Trace()
    with tempfile.TemporaryDirectory(prefix="bench-search-") as folder:
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


def optuna_tpe_successive_halving(seed: int, budget: int) -> Trace:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trace = Trace()
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
    )

    def objective(trial: optuna.Trial) -> float:
        x = [trial.suggest_float(name, 0.0, 1.0) for name in DIMS]
        value = math.nan
        for epoch in range(1, MAX_T + 1):
            trace.epoch(x, epoch)
            value = hartmann(x, epoch / MAX_T)
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    while trace.cost < budget:
        study.optimize(objective, n_trials=1)
    return trace


def random_full_fidelity(seed: int, budget: int) -> Trace:
    rng = np.random.default_rng(seed)
    trace = Trace()
    while trace.cost < budget:
        x = list(rng.uniform(0.0, 1.0, size=len(DIMS)))
        for epoch in range(1, MAX_T + 1):
            trace.epoch(x, epoch)
    return trace


SYSTEMS = (
    "tuner TPE + ASHA",
    "tuner random + ASHA",
    "optuna TPE + successive halving",
    "random, no early stopping",
)


def run(seeds: int, budget_full: int, concurrency: int) -> dict[str, Any]:
    from tuner.engine.session import quiet_driver_output

    quiet_driver_output()
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    budget = budget_full * MAX_T
    traces: dict[str, list[Trace]] = {name: [] for name in SYSTEMS}
    with ray_for({}, "ray"):
        for seed in range(seeds):
            traces[SYSTEMS[0]].append(
                tuner_system({"kind": "optuna", "sampler": "tpe"}, seed, budget, concurrency)
            )
            traces[SYSTEMS[1]].append(tuner_system({"kind": "random"}, seed, budget, concurrency))
            traces[SYSTEMS[2]].append(optuna_tpe_successive_halving(seed, budget))
            traces[SYSTEMS[3]].append(random_full_fidelity(seed, budget))
    checkpoints = [budget // 8, budget // 4, budget // 2, budget]
    # The target: what random search without early stopping reaches with the whole budget.
    target = statistics.median(t.regret_at(budget) for t in traces[SYSTEMS[3]])
    summary: dict[str, Any] = {}
    for name, runs in traces.items():
        regrets = {str(c): [t.regret_at(c) for t in runs] for c in checkpoints}
        summary[name] = {
            "median_regret": {c: statistics.median(r) for c, r in regrets.items()},
            "quartiles_regret": {c: quartiles(r) for c, r in regrets.items()},
            "regret_per_seed": regrets,
            "median_cost_to_target": cost_to(runs, target, budget),
        }
    baseline = summary[SYSTEMS[3]]["median_cost_to_target"]
    for name in SYSTEMS:
        summary[name]["cheaper_than_random_no_es"] = (
            baseline / summary[name]["median_cost_to_target"]
        )
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


def cost_to(runs: list[Trace], target: float, budget: int) -> float:
    """The first cost at which the median regret over seeds is at the target or better."""
    return next(
        (
            cost
            for cost in range(1, budget + 1)
            if statistics.median(t.regret_at(cost) for t in runs) <= target
        ),
        math.inf,
    )


def quartiles(values: list[float]) -> list[float]:
    finite = sorted(values)
    if len(finite) < 2:
        return [finite[0], finite[0]] if finite else [math.nan, math.nan]
    q = statistics.quantiles(finite, n=4, method="inclusive")
    return [q[0], q[2]]


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    checkpoints = [str(c) for c in result["checkpoints_epochs"]]
    header = (
        "system",
        *(f"regret @ {c} epochs" for c in checkpoints),
        f"epochs to regret {result['target_regret']:.3f}",
        "x cheaper than random, no ES",
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
                f"{figures['cheaper_than_random_no_es']:.1f}",
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=40, help="in full evaluations")
    parser.add_argument(
        "--concurrency", type=int, default=2, help="tuner's trials at a time (optuna: 1)"
    )
    parser.add_argument("--smoke", action="store_true", help="2 seeds, a budget of 4")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.seeds, args.budget = 2, 4
    result = run(args.seeds, args.budget, args.concurrency)
    name = "search-smoke" if args.smoke else f"search-c{args.concurrency}"
    return write(name, result, table(result), args.out)


if __name__ == "__main__":
    main()
