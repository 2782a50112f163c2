"""A fresh trial process's first optimizer: what it imports, and what that costs.

    python -m bench.trial_start                 # 5 fresh processes per row, medians
    python -m bench.trial_start --runs 9
    python -m bench.trial_start --smoke         # one process per row: checks that it works

Each row is a new Python process, as a trial in a new Ray worker is: it imports torch,
builds a small MLP, then the built-in trainers' optimizer for one `optimizer` knob
(tuner.trainer.optim.build_optimizer, the trainers' own settings) and takes two steps.
It reports each phase's seconds and whether `torch._dynamo` was imported after each.

Every torch.optim optimizer imports `torch._dynamo` when it is first built: the base
class's `add_param_group` (and `zero_grad`, `state_dict`, `load_state_dict`) is wrapped
by `torch._disable_dynamo`, which imports torch._dynamo on its first call, and `step`
is wrapped by `_use_grad_for_differentiable`, which imports it on every call (cheap once
loaded). No optimizer argument avoids it (foreach, fused, capturable and differentiable
were checked by hand). The row `adam, torch._dynamo imported first` separates the import
from the optimizer's own construction. No Ray: how often a sweep pays this (once per
trial process) is held by tests/test_dynamo_per_worker.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import REPO, RESULTS, machine, python_path, write

OPTIMIZERS = ("adam", "adamw", "sgd", "momentum", "nesterov", "rmsprop")
PREIMPORTED = "adam, torch._dynamo imported first"

# One fresh process. It prints one JSON object: seconds per phase, and whether
# torch._dynamo was in sys.modules after each.
_CHILD = """
import json, sys, time
optimizer, preimport = sys.argv[1], sys.argv[2] == "1"
now = time.perf_counter
seen = lambda: "torch._dynamo" in sys.modules
out = {}
t = now()
import torch
from torch import nn
from tuner.trainer.knobs import ClassifierKnobs
from tuner.trainer.optim import build_optimizer
out["import_torch_s"] = now() - t
out["dynamo_after_import"] = seen()
if preimport:
    t = now()
    import torch._dynamo
    out["import_dynamo_s"] = now() - t
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
knobs = ClassifierKnobs.model_validate({"optimizer": optimizer})
t = now()
built = build_optimizer(model.parameters(), knobs)
out["build_optimizer_s"] = now() - t
out["dynamo_after_build"] = seen()
for step in ("first_step_s", "second_step_s"):
    loss = nn.functional.cross_entropy(model(torch.randn(32, 64)), torch.randint(0, 10, (32,)))
    built.zero_grad()
    loss.backward()
    t = now()
    built.step()
    out[step] = now() - t
print(json.dumps(out))
"""


def fresh_process(optimizer: str, preimport: bool) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": python_path()}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, optimizer, "1" if preimport else "0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.splitlines()[-1]))


def run(runs: int, optimizers: Sequence[str]) -> dict[str, Any]:
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in optimizers}
    rows[PREIMPORTED] = []
    # The rows take turns, run by run, so a busy spell on a shared machine spreads
    # over all of them instead of landing on one.
    for _ in range(runs):
        for name in optimizers:
            rows[name].append(fresh_process(name, preimport=False))
        rows[PREIMPORTED].append(fresh_process("adam", preimport=True))
    return {
        "machine": machine(),
        "runs": runs,
        "processes": rows,
        "loadavg_after": list(os.getloadavg()),
    }


def _median(samples: list[dict[str, Any]], key: str) -> str:
    values = [float(sample[key]) for sample in samples if key in sample]
    return f"{statistics.median(values):.3f}" if values else ""


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        (
            "optimizer",
            "import torch s",
            "import torch._dynamo s",
            "build optimizer s",
            "first step s",
            "second step s",
            "torch._dynamo after build",
        )
    ]
    for name, samples in result["processes"].items():
        after = {bool(sample["dynamo_after_build"]) for sample in samples}
        rows.append(
            (
                name,
                _median(samples, "import_torch_s"),
                _median(samples, "import_dynamo_s"),
                _median(samples, "build_optimizer_s"),
                _median(samples, "first_step_s"),
                _median(samples, "second_step_s"),
                "/".join(sorted("yes" if imported else "no" for imported in after)),
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="one process per row")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    runs, optimizers = (1, OPTIMIZERS[:1]) if args.smoke else (args.runs, OPTIMIZERS)
    result = run(runs, optimizers)
    name = "trial-start-smoke" if args.smoke else "trial-start"
    return write(name, result, table(result), args.out)


if __name__ == "__main__":
    main()
