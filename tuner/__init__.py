"""tuner: hyperparameter sweeps for PyTorch from a YAML file.

Ray Tune schedules the trials, Optuna searches, ASHA stops bad trials early and MLflow
records every trial under one parent run per sweep. Heavy modules (Ray, torch, MLflow)
load on first use of `run_sweep`, so `load_spec` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuner.spec import SpecError, SweepSpec, load_spec, parse_spec

if TYPE_CHECKING:
    from tuner.runner import RunOptions, SweepResult

__all__ = [
    "RunOptions",
    "SpecError",
    "SweepResult",
    "SweepSpec",
    "load_spec",
    "parse_spec",
    "run_sweep",
]


def run_sweep(spec: SweepSpec, options: RunOptions | None = None) -> SweepResult:
    """Run a sweep and return its result; see tuner.runner.run_sweep."""
    from tuner.runner import run_sweep as _run_sweep

    return _run_sweep(spec, options)


def __getattr__(name: str) -> Any:
    if name in ("RunOptions", "SweepResult"):
        from tuner import runner

        return getattr(runner, name)
    raise AttributeError(name)
