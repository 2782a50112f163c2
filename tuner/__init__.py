"""tuner: hyperparameter sweeps for PyTorch from a YAML file.

Ray Tune schedules the trials, Optuna searches, ASHA stops bad trials early and MLflow
records every trial under one parent run per sweep. The public API:

    spec = load_spec("search_spaces/digits_mlp_tpe_asha.yaml")
    result = run_sweep(spec, RunOptions(tracking_uri="sqlite:///mlflow.db"))
    print(result.best.value, result.best.params)

and, in a trainable of your own, `tuner.should_checkpoint()` (a spot notice came).

Heavy modules (Ray, torch, MLflow) load on first use of `run_sweep` / `resume_sweep`,
so `load_spec` stays cheap. The packages, by concern (dependencies point down):

    cli      the `tuner` command
    engine   run_sweep / resume_sweep, the Ray session, storage, experiments, trainables
    cluster  the Jobs API commands and the spot preemption watcher
    search   spaces, searchers, the ASHA scheduler and its promotion rule
    tracking MLflow runs, reading sweeps back, model export, console progress
    trainer  the built-in PyTorch trainers and their knobs
    spec     the sweep file: schema, params, reading it
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner.engine.outcome import BestTrial, SweepResult
    from tuner.engine.runner import RunOptions
    from tuner.spec import SpecError, SweepSpec, parse_spec


__all__ = [
    "BestTrial",
    "RunOptions",
    "SpecError",
    "SweepResult",
    "SweepSpec",
    "__version__",
    "load_spec",
    "parse_spec",
    "resume_sweep",
    "run_sweep",
    "should_checkpoint",
]


def load_spec(path: str | Path, *, check_trainable: bool = True) -> SweepSpec:
    """Read and validate a sweep file; every failure is a one-line SpecError naming it.
    See tuner.engine.loading: imported on first use, since every process that imports
    a part of tuner (each trial's among them) runs this module first."""
    from tuner.engine.loading import load_spec as _load_spec

    return _load_spec(path, check_trainable=check_trainable)


def run_sweep(spec: SweepSpec, options: RunOptions | None = None) -> SweepResult:
    """Run a sweep to the end and return its best trial; see tuner.engine.runner."""
    from tuner.engine.runner import run_sweep as _run_sweep

    return _run_sweep(spec, options)


def resume_sweep(sweep_name: str, options: RunOptions | None = None) -> SweepResult:
    """Finish the latest interrupted run of a sweep from its storage, in its MLflow runs."""
    from tuner.engine.runner import resume_sweep as _resume_sweep

    return _resume_sweep(sweep_name, options)


def should_checkpoint() -> bool:
    """In a trainable of your own: has a spot notice asked this trial to checkpoint now?
    See tuner.trainer.notices.should_checkpoint."""
    from tuner.trainer.notices import should_checkpoint as _should_checkpoint

    return _should_checkpoint()


def __getattr__(name: str) -> Any:
    # Lazily, so that `import tuner` does not import Ray, nor the sweep file's schema:
    # every process importing a part of tuner runs this module first, the `tuner`
    # command's among them (tuner.entry).
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("tuner")
        except PackageNotFoundError:  # a checkout on sys.path that was never installed
            return "0+unknown"
    if name in ("SpecError", "SweepSpec", "parse_spec"):
        from tuner import spec

        return getattr(spec, name)
    if name == "RunOptions":
        from tuner.engine.runner import RunOptions

        return RunOptions
    if name in ("SweepResult", "BestTrial"):
        from tuner.engine import outcome

        return getattr(outcome, name)
    raise AttributeError(f"module 'tuner' has no attribute {name!r}")
