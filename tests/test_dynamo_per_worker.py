"""A sweep of built-in trainer trials loads `torch._dynamo` once per trial process, not
once per trial.

Every torch.optim optimizer imports torch._dynamo when it is first built (its
`add_param_group` is wrapped by `torch._disable_dynamo`): about 0.9 s of CPU in a fresh
process on the 2-core machine (bench.trial_start). No optimizer argument avoids it, so
what a sweep pays depends on how many processes its trials run in: trial actors are
reused, and a process's later trials find the module loaded. Recorded in every Ray
worker process (tests/dynamo_imports.py); no timing is asserted.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from bench.common import python_path
from tests.dynamo_imports import IMPORTS_FILE
from tuner.engine.runner import RunOptions, run_sweep
from tuner.spec import parse_spec

pytestmark = pytest.mark.ray

SLOTS = 2
LEARNING_RATES = [0.003, 0.01, 0.03, 0.1, 0.3]


@pytest.fixture(scope="module")
def imports_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Embedded Ray whose every worker process records its trials' torch._dynamo."""
    import ray

    recorded = tmp_path_factory.mktemp("dynamo") / "imports.txt"
    ray.init(
        num_cpus=SLOTS,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={
            "env_vars": {"PYTHONPATH": python_path(), IMPORTS_FILE: str(recorded)},
            "worker_process_setup_hook": "tests.dynamo_imports.record_trials",
        },
    )
    yield recorded
    ray.shutdown()


def test_each_trial_process_imports_torch_dynamo_once(imports_file: Path, tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "name": "dynamo-per-worker",
            "trainable": "builtin:classifier",
            "metric": "val_accuracy",
            "mode": "max",
            "searcher": {"kind": "grid"},
            "max_concurrent_trials": SLOTS,
            "params": {"lr": {"type": "grid", "values": LEARNING_RATES}},
            "config": {
                "dataset": "synthetic",
                "synthetic_samples": 300,
                "synthetic_features": 8,
                "hidden": 16,
                "epochs": 2,
            },
        }
    )
    result = run_sweep(
        spec,
        RunOptions(
            tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
            storage=str(tmp_path / "runs"),
            console=Console(file=io.StringIO()),
        ),
    )
    assert result.num_trials == len(LEARNING_RATES) and result.num_failed == 0

    events: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for line in imports_file.read_text().splitlines():
        pid, event, loaded = line.split()
        events[pid].append((event, loaded))
    started = [
        loaded for trials in events.values() for event, loaded in trials if event == "started"
    ]
    assert len(started) == len(LEARNING_RATES)  # every trial ran in a recorded worker
    # The trials shared the slots' processes, so the import was paid at most once a slot.
    assert 1 <= len(events) <= SLOTS
    for trials in events.values():
        # A process's first trial loads torch._dynamo (its optimizer does: if torch
        # stops doing so, docs/performance.md's account of a trial's start is out of
        # date); every later trial in that process starts with it loaded.
        assert trials[0] == ("started", "no")
        assert all(loaded == "yes" for _, loaded in trials[1:])
