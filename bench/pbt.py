"""Population-based training against fixed-configuration search, by epochs trained.

    python -m bench.pbt              # 5 seeds of the digits knobs space
    python -m bench.pbt --smoke      # 1 seed, 3 trials of 2 epochs: checks that it works

The space is search_spaces/digits_knobs_tpe_asha.yaml (MLP or CNN, optimizer, schedule,
regularization, initialization, augmentation; 24 trials of 15 epochs), the trainer
tuner's built-in one, 2 slots. Systems:
- tuner PBT: the 24 trials as one population, every 3 epochs the bottom quarter takes
  a top trial's checkpoint and perturbs the knobs that may change mid-training (the
  file's optimizer, lr, weight_decay, dropout, label_smoothing, augmentations); the
  rest (model, schedule, batch size, ...) stay as the population drew them. The same
  epoch budget as random search: 24 x 15.
- tuner TPE + ASHA: the sweep file as written.
- tuner random, no early stopping: every trial to the end.
Epochs are counted from Ray's own record of every result (each trial's result.json), so
epochs a PBT trial trains again after copying an older checkpoint count too. Reported:
the best validation accuracy after each share of the random budget, and the best
model's test accuracy (the split no trial saw), medians over seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import RESULTS, machine, ray_for, run_tuner, write
from bench.digits import digits_sweep, without_early_stopping
from bench.overhead import create_tracking_store

# (the order Ray received it in, validation accuracy) for every epoch trained
Epochs = list[float]


def population_based(raw: dict[str, Any], smoke: bool) -> dict[str, Any]:
    pbt = {**raw, "searcher": {"kind": "random", "seed": raw["searcher"]["seed"]}}
    pbt["scheduler"] = {"kind": "pbt", "perturbation_interval": 2 if smoke else 3}
    return pbt


def epochs_trained(experiment_path: str, metric: str) -> Epochs:
    """Every result of every trial, in the order Ray stamped them."""
    results = []
    for path in Path(experiment_path).glob("trial_*/result.json"):
        for line in path.read_text().splitlines():
            result = json.loads(line)
            if metric in result:
                results.append((result["timestamp"], result["time_total_s"], result[metric]))
    return [accuracy for *_, accuracy in sorted(results)]


def best_within(epochs: Epochs, budget: int) -> float:
    return max(epochs[:budget], default=math.nan)


def run_system(sweep: dict[str, Any]) -> tuple[Epochs, float]:
    with tempfile.TemporaryDirectory(prefix="bench-pbt-") as folder:
        create_tracking_store(folder)
        with ray_for({}, "ray"):
            result = run_tuner(sweep, folder)
        epochs = epochs_trained(result.experiment_path, sweep["metric"])
    return epochs, result.test_metrics.get("test_accuracy", math.nan)


def run(seeds: int, smoke: bool) -> dict[str, Any]:
    spec = digits_sweep(0, smoke)
    budget = spec.num_samples * int(spec.config["epochs"])
    shares = [budget // 8, budget // 4, budget // 2, budget]
    systems = {
        "tuner PBT (population 24, every 3 epochs)": lambda raw: population_based(raw, smoke),
        "tuner TPE + ASHA": lambda raw: raw,
        "tuner random, no early stopping": lambda raw: without_early_stopping(
            digits_sweep(raw["searcher"]["seed"], smoke)
        ),
    }
    figures: dict[str, dict[str, Any]] = {name: {"runs": [], "test": []} for name in systems}
    for seed in range(seeds):
        raw = digits_sweep(seed, smoke).model_dump(mode="json", exclude_none=True)
        for name, make in systems.items():  # systems take turns within a seed
            epochs, test = run_system(make(raw))
            figures[name]["runs"].append(epochs)
            figures[name]["test"].append(test)
    summary = {}
    for name, found in figures.items():
        runs: list[Epochs] = found["runs"]
        summary[name] = {
            "median_best_within": {
                str(n): statistics.median(best_within(r, n) for r in runs) for n in shares
            },
            "median_epochs_trained": statistics.median(len(r) for r in runs),
            "median_test_accuracy": statistics.median(found["test"]),
            "best_per_seed": [max(r, default=math.nan) for r in runs],
            "test_per_seed": found["test"],
            "epochs_per_seed": [len(r) for r in runs],
        }
    return {
        "machine": machine(),
        "sweep_file": "digits_knobs_tpe_asha.yaml",
        "seeds": seeds,
        "budget_epochs": budget,
        "shares_epochs": shares,
        "systems": summary,
    }


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    shares = [str(n) for n in result["shares_epochs"]]
    header = (
        "system",
        *(f"best val acc within {n} epochs" for n in shares),
        "epochs trained",
        "best model's test acc",
    )
    rows: list[tuple[str, ...]] = [header]
    for name, figures in result["systems"].items():
        best = figures["median_best_within"]
        rows.append(
            (
                name,
                *(f"{best[n]:.4f}" for n in shares),
                f"{figures['median_epochs_trained']:.0f}",
                f"{figures['median_test_accuracy']:.4f}",
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="1 seed, 3 trials of 2 epochs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    seeds = 1 if args.smoke else args.seeds
    result = run(seeds, args.smoke)
    name = "pbt-smoke" if args.smoke else "pbt"
    return write(name, result, table(result), args.out)


if __name__ == "__main__":
    main()
