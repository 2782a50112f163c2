"""TPE's time per suggestion against the study's length, as tuner builds the sampler.

    python -m bench.tpe                     # 100, 1,000, 5,000 and 10,000 earlier trials
    python -m bench.tpe --smoke             # 100 and 300

A study is filled with N finished trials of random configurations on a small space (3
params: a log float, a log int, a categorical), one more trial runs (the other slot: the
constant liar counts it), then TPE suggests the next trials, each told before the next
is asked. Reported: the median CPU time of one suggestion (`ask`, the sampler's work),
for tuner's TPE as a sweep file without `history` gets it (Optuna's own) and with
`history: 1000`. CPU time, not wall time: the figure a busy machine changes least.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import create_trial

from bench.common import RESULTS, machine, write
from tuner.search.optuna_search import build_sampler

SPACE = {
    "lr": FloatDistribution(1e-4, 0.3, log=True),
    "hidden": IntDistribution(16, 256, log=True),
    "optimizer": CategoricalDistribution(["sgd", "adam", "adamw"]),
}
HISTORIES = (100, 1000, 5000, 10000)
SUGGESTIONS = 20
BOUND = 1000  # the `history` measured against the unbounded sampler
VARIANTS: dict[str, int | None] = {"tpe (optuna's own)": None, f"tpe, history: {BOUND}": BOUND}


def score(params: dict[str, Any]) -> float:
    bonus = 0.5 if params["optimizer"] == "adam" else 0.0
    return (
        -((math.log10(params["lr"]) + 2) ** 2) - (math.log2(params["hidden"]) - 6) ** 2 / 4 + bonus
    )


def filled(history: int | None, trials: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=build_sampler("tpe", 0, history=history)
    )
    rng = random.Random(0)
    earlier = []
    for _ in range(trials):
        params = {
            "lr": 10 ** rng.uniform(-4, math.log10(0.3)),
            "hidden": rng.randint(16, 256),
            "optimizer": rng.choice(["sgd", "adam", "adamw"]),
        }
        earlier.append(create_trial(params=params, distributions=SPACE, value=score(params)))
    study.add_trials(earlier)
    return study


def per_suggestion_ms(history: int | None, trials: int, suggestions: int) -> float:
    study = filled(history, trials)
    study.ask(SPACE)  # the other slot's trial, running
    times = []
    for _ in range(suggestions):
        started = time.process_time()
        trial = study.ask(SPACE)
        times.append(time.process_time() - started)
        study.tell(trial, score(trial.params))
    return statistics.median(times) * 1000


def run(histories: Sequence[int], suggestions: int) -> dict[str, Any]:
    return {
        "machine": machine(),
        "suggestions": suggestions,
        "ms_per_suggestion": {
            name: {str(n): per_suggestion_ms(bound, n, suggestions) for n in histories}
            for name, bound in VARIANTS.items()
        },
    }


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    figures = result["ms_per_suggestion"]
    histories = list(next(iter(figures.values())))
    rows: list[tuple[str, ...]] = [
        ("sampler", *(f"CPU ms per suggestion after {int(n):,} trials" for n in histories))
    ]
    for name, by_n in figures.items():
        rows.append((name, *(f"{by_n[n]:.1f}" for n in histories)))
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="100 and 300 trials")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    histories, suggestions = ((100, 300), 3) if args.smoke else (HISTORIES, SUGGESTIONS)
    result = run(histories, suggestions)
    return write("tpe-smoke" if args.smoke else "tpe", result, table(result), args.out)


if __name__ == "__main__":
    main()
