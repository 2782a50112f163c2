"""Where `stop_when` stops a sweep, against the regret actually left there.

    python -m bench.stop_when            # 20 seeds, 100 trials each
    python -m bench.stop_when --smoke    # 2 seeds, 25 trials

Optuna TPE minimizes Hartmann-6 at full fidelity (known minimum -3.32237), one trial at
a time in one process. After every trial from the 20th, tuner's RegretStop (the code a
sweep with `stop_when` runs) estimates the regret bound from the complete trials. For
each threshold: the trial at which the sweep would have stopped, the regret actually
left there (best so far minus the optimum), what the remaining trials would still have
gained, and whether the bound held (regret left <= the bound when it stopped).
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import optuna

from bench.common import RESULTS, machine, write
from bench.search import DIMS, F_STAR, hartmann
from tuner.search.terminator import RegretStop
from tuner.spec.stop_when import StopWhen

THRESHOLDS = (0.3, 0.5, 0.7)  # in Hartmann-6's units: its optimum is -3.32, a mean point ~ -0.3
MIN_TRIALS = (20, 40)  # Optuna's default, and tuner's


def trace(seed: int, trials: int) -> tuple[list[float], list[float]]:
    """(best so far after each trial, the regret bound after each trial or NaN)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    watcher = RegretStop(f"bench-{seed}").watch(StopWhen(regret_below=1e-12, min_trials=20))
    best, bounds = [], []
    for _ in range(trials):
        study.optimize(lambda t: hartmann([t.suggest_float(d, 0.0, 1.0) for d in DIMS]), 1)
        watcher.bound = None
        watcher.consider(study)
        best.append(study.best_value)
        bounds.append(math.nan if watcher.bound is None else watcher.bound)
    return best, bounds


def stops(
    best: list[float], bounds: list[float], threshold: float, min_trials: int
) -> dict[str, Any]:
    at = next(
        (i for i, bound in enumerate(bounds) if i + 1 >= min_trials and bound < threshold), None
    )
    if at is None:
        return {"stopped_at": None, "regret_left": best[-1] - F_STAR, "held": True}
    left = best[at] - F_STAR
    return {
        "stopped_at": at + 1,
        "regret_left": left,
        "bound": bounds[at],
        "gain_forgone": best[at] - best[-1],
        "held": left <= bounds[at],
    }


def run(seeds: int, trials: int) -> dict[str, Any]:
    traces = [trace(seed, trials) for seed in range(seeds)]
    summary: dict[str, Any] = {}
    for min_trials in MIN_TRIALS:
        for threshold in THRESHOLDS:
            per_seed = [stops(best, bounds, threshold, min_trials) for best, bounds in traces]
            summary[f"{threshold} after {min_trials}"] = summarized(per_seed)
    return {
        "machine": machine(),
        "seeds": seeds,
        "trials": trials,
        "median_regret_at_end": statistics.median(best[-1] - F_STAR for best, _ in traces),
        "thresholds": summary,
    }


def summarized(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    stopped = [s for s in per_seed if s["stopped_at"] is not None]
    return {
        "stopped_seeds": len(stopped),
        "median_stopped_at": _median(s["stopped_at"] for s in stopped),
        "median_regret_left": _median(s["regret_left"] for s in stopped),
        "median_gain_forgone": _median(s["gain_forgone"] for s in stopped),
        "bound_held": sum(s["held"] for s in stopped),
        "per_seed": per_seed,
    }


def _median(values: Iterable[float]) -> float | None:
    listed = list(values)
    return statistics.median(listed) if listed else None


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    header = (
        "regret_below, after min_trials",
        "seeds stopped",
        "median trial stopped at",
        "median regret left",
        "median gain forgone",
        "bound held",
    )
    rows: list[tuple[str, ...]] = [header]

    def shown(value: float | None, digits: str = ".3f") -> str:
        return "-" if value is None else format(value, digits)

    for threshold, figures in result["thresholds"].items():
        stopped = figures["stopped_seeds"]
        rows.append(
            (
                threshold,
                f"{stopped} of {result['seeds']}",
                shown(figures["median_stopped_at"], ".0f"),
                shown(figures["median_regret_left"]),
                shown(figures["median_gain_forgone"]),
                f"{figures['bound_held']} of {stopped}",
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--smoke", action="store_true", help="2 seeds, 25 trials")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    seeds, trials = (2, 25) if args.smoke else (args.seeds, args.trials)
    result = run(seeds, trials)
    return write("stop-when-smoke" if args.smoke else "stop-when", result, table(result), args.out)


if __name__ == "__main__":
    main()
