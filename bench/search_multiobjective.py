"""Two objectives: hypervolume against cumulative cost, tuner's MO-ASHA vs plain Optuna.

    python -m bench.search_multiobjective           # 20 seeds, a budget of 40 full evaluations
    python -m bench.search_multiobjective --smoke   # 2 seeds, a budget of 4

The first objective is bench.search's multi-fidelity Hartmann-6 (a "loss" that improves
with epochs, minimized); the second is the sum of the six inputs (a "model size",
minimized, known from the first epoch, as `num_params` is). Their optima pull apart, so
the front is a curve. A configuration counts once trained to full fidelity, as in
bench.search; the quality of what a system found by a cost is the hypervolume of those
configurations' front against the reference point (0, 6) (the worst of each). The clock
is simulated in epochs. Systems:
- tuner TPE (multi-objective) + ASHA ranking rungs by Pareto front and crowding distance;
- plain Optuna, multi-objective TPE, every trial to the end (Optuna cannot prune
  multi-objective studies, optuna #3450);
- random search, every trial to the end.
The target: tuner reaches plain Optuna's final hypervolume >= 2x cheaper in epochs.
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
from bench.search import DIMS, MAX_T, hartmann, point, quartiles

REFERENCE = (0.0, 6.0)  # (loss, size): no worse than the worst of each


def objectives(x: list[float], fidelity: float = 1.0) -> tuple[float, float]:
    return hartmann(x, fidelity), float(sum(x))


def hypervolume(points: Sequence[tuple[float, float]]) -> float:
    """The area both objectives' minimization dominates below REFERENCE (2-D sweep)."""
    inside = sorted(p for p in points if p[0] < REFERENCE[0] and p[1] < REFERENCE[1])
    area, best_size = 0.0, REFERENCE[1]
    for loss, size in inside:  # by loss ascending: each point adds a strip if smaller
        if size < best_size:
            area += (REFERENCE[0] - loss) * (best_size - size)
            best_size = size
    return area


class FrontTrace:
    """Cumulative cost and every fully trained configuration's objectives, in order."""

    def __init__(self) -> None:
        self.cost = 0
        self.trained: list[tuple[int, tuple[float, float]]] = []

    def epoch(self, x: list[float], epoch: int) -> None:
        self.cost += 1
        if epoch == MAX_T:
            self.trained.append((self.cost, objectives(x)))

    def hypervolume_at(self, cost: float) -> float:
        return hypervolume([p for spent, p in self.trained if spent <= cost])


def mo_trainable(config: dict[str, Any]) -> None:
    x = point(config)
    for epoch in range(1, MAX_T + 1):
        loss, size = objectives(x, epoch / MAX_T)
        tune.report({"epoch": epoch, "loss": loss, "size": size})


class Recorder(tune.Callback):  # type: ignore[misc]
    def __init__(self, trace: FrontTrace) -> None:
        self.trace = trace

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        self.trace.epoch(point(trial.config), int(result["epoch"]))


def tuner_system(seed: int, budget: int, concurrency: int) -> FrontTrace:
    from tuner.engine.experiments import Experiment
    from tuner.engine.storage import resolve_storage
    from tuner.engine.tuner_factory import build_tuner
    from tuner.search.early_stops import EarlyStops
    from tuner.spec import parse_spec

    spec = parse_spec(
        {
            "name": f"two-objectives-{seed}",
            "trainable": "bench.search_multiobjective:mo_trainable",
            "objectives": [{"metric": "loss", "mode": "min"}, {"metric": "size", "mode": "min"}],
            "num_samples": max(8, budget // 2),
            "searcher": {"kind": "optuna", "sampler": "tpe", "seed": seed},
            "scheduler": {"kind": "asha", "max_t": MAX_T, "grace_period": 1, "reduction_factor": 3},
            "max_concurrent_trials": concurrency,
            "params": {name: {"type": "float", "low": 0.0, "high": 1.0} for name in DIMS},
        }
    )
    trace = FrontTrace()
    with tempfile.TemporaryDirectory(prefix="bench-mo-") as folder:
        experiment = Experiment.new(resolve_storage(folder), spec.name)
        build_tuner(
            spec,
            experiment,
            [Recorder(trace)],
            EarlyStops.shared(experiment.uri),
            withheld={},
            on_cluster=False,
        ).fit()
    return trace


def optuna_mo_tpe(seed: int, budget: int) -> FrontTrace:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trace = FrontTrace()
    study = optuna.create_study(
        directions=["minimize", "minimize"], sampler=optuna.samplers.TPESampler(seed=seed)
    )

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x = [trial.suggest_float(name, 0.0, 1.0) for name in DIMS]
        for epoch in range(1, MAX_T + 1):
            trace.epoch(x, epoch)
        return objectives(x)

    while trace.cost < budget:
        study.optimize(objective, n_trials=1)
    return trace


def random_search(seed: int, budget: int) -> FrontTrace:
    rng = np.random.default_rng(seed)
    trace = FrontTrace()
    while trace.cost < budget:
        x = list(rng.uniform(0.0, 1.0, size=len(DIMS)))
        for epoch in range(1, MAX_T + 1):
            trace.epoch(x, epoch)
    return trace


SYSTEMS = (
    "tuner TPE + multi-objective ASHA",
    "optuna multi-objective TPE, no early stopping",
    "random, no early stopping",
)


def cost_to(runs: list[FrontTrace], target: float, budget: int) -> float:
    """The first cost at which the median hypervolume reaches the target (it only grows
    with cost: a binary search)."""

    def reached(cost: int) -> bool:
        return statistics.median(t.hypervolume_at(cost) for t in runs) >= target

    if not reached(budget):
        return math.inf
    low, high = 1, budget
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if reached(middle) else (middle + 1, high)
    return low


def run(seeds: int, budget_full: int, concurrency: int) -> dict[str, Any]:
    from tuner.engine.session import quiet_driver_output

    quiet_driver_output()
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    budget = budget_full * MAX_T
    traces: dict[str, list[FrontTrace]] = {name: [] for name in SYSTEMS}
    with ray_for({}, "ray"):
        for seed in range(seeds):
            traces[SYSTEMS[0]].append(tuner_system(seed, budget, concurrency))
            traces[SYSTEMS[1]].append(optuna_mo_tpe(seed, budget))
            traces[SYSTEMS[2]].append(random_search(seed, budget))
    checkpoints = [budget // 8, budget // 4, budget // 2, budget]
    target = statistics.median(t.hypervolume_at(budget) for t in traces[SYSTEMS[1]])
    summary: dict[str, Any] = {}
    for name, runs in traces.items():
        volumes = {str(c): [t.hypervolume_at(c) for t in runs] for c in checkpoints}
        summary[name] = {
            "median_hypervolume": {c: statistics.median(v) for c, v in volumes.items()},
            "quartiles_hypervolume": {c: quartiles(v) for c, v in volumes.items()},
            "hypervolume_per_seed": volumes,
            "median_cost_to_target": cost_to(runs, target, budget),
        }
    plain = summary[SYSTEMS[1]]["median_cost_to_target"]
    for name in SYSTEMS:
        summary[name]["cheaper_than_optuna"] = plain / summary[name]["median_cost_to_target"]
    return {
        "machine": machine(),
        "seeds": seeds,
        "max_t": MAX_T,
        "budget_epochs": budget,
        "budget_full_evaluations": budget_full,
        "tuner_concurrent_trials": concurrency,
        "reference_point": list(REFERENCE),
        "target_hypervolume": target,
        "checkpoints_epochs": checkpoints,
        "systems": summary,
    }


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    checkpoints = [str(c) for c in result["checkpoints_epochs"]]
    header = (
        "system",
        *(f"hypervolume @ {c} epochs" for c in checkpoints),
        f"epochs to {result['target_hypervolume']:.3f}",
        "x cheaper than plain optuna",
    )
    rows: list[tuple[str, ...]] = [header]
    for name, figures in result["systems"].items():
        cells = []
        for c in checkpoints:
            low, high = figures["quartiles_hypervolume"][c]
            cells.append(f"{figures['median_hypervolume'][c]:.3f} [{low:.3f}, {high:.3f}]")
        rows.append(
            (
                name,
                *cells,
                f"{figures['median_cost_to_target']:.0f}",
                f"{figures['cheaper_than_optuna']:.1f}",
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
    name = "search-multiobjective-smoke" if args.smoke else "search-multiobjective"
    return write(name, result, table(result), args.out)


if __name__ == "__main__":
    main()
