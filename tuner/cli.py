"""The `tuner` command: thin wrappers over tuner's API. Exit 0 ok, 1 failed sweep, 2 bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from tuner.defaults import DEFAULT_TRACKING_URI
from tuner.spec import SpecError, SweepSpec, load_spec

if TYPE_CHECKING:
    from tuner.runner import SweepResult

EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl-C

app = typer.Typer(
    help="Hyperparameter sweeps for PyTorch: Ray Tune + Optuna + ASHA, tracked in MLflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

TrackingUri = Annotated[
    str, typer.Option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI.")
]


def _fail(message: str, code: int) -> NoReturn:
    stderr.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


def _load(path: Path) -> SweepSpec:
    try:
        return load_spec(path)
    except SpecError as exc:
        _fail(exc.line(), EXIT_INVALID)


@app.command()
def validate(
    specs: Annotated[list[Path], typer.Argument(help="Sweep files to check.")],
) -> None:
    """Check sweep files without starting Ray. Exit 2 if any is invalid."""
    invalid = 0
    for path in specs:
        try:
            spec = load_spec(path)
        except SpecError as exc:
            invalid += 1
            stderr.print(f"error: {exc.line()}", markup=False)
            continue
        typer.echo(
            f"ok: {path} ({spec.expected_trials()} trials, {spec.searcher_label} search, "
            f"{spec.scheduler.kind} scheduler, {len(spec.params)} params)"
        )
    if invalid:
        raise typer.Exit(EXIT_INVALID)


@app.command()
def run(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Sweep file to run.")],
    tracking_uri: TrackingUri = DEFAULT_TRACKING_URI,
    storage: Annotated[
        str | None,
        typer.Option(
            envvar="TUNER_STORAGE",
            help="Folder or s3:// URI for checkpoints and Ray state (default: ./tuner_runs).",
        ),
    ] = None,
    num_samples: Annotated[
        int | None, typer.Option(help="Override the sweep file's num_samples.")
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(help="Join this Ray cluster instead of starting an embedded one."),
    ] = None,
) -> None:
    """Run a sweep: embedded Ray and local MLflow unless told otherwise."""
    spec = _load(spec_path)
    if num_samples is not None:
        try:
            spec = spec.with_num_samples(num_samples)
        except SpecError as exc:
            _fail(f"--num-samples: {exc.problem}", EXIT_INVALID)
    # Imported here: `tuner validate` and `--help` must not pay for Ray and torch.
    from tuner.ray_session import RayUnavailable
    from tuner.runner import RunOptions, SweepFailed, SweepInterrupted, run_sweep
    from tuner.storage import resolve_storage
    from tuner.tracking import TrackingError

    try:
        resolve_storage(storage)
    except ValueError as exc:
        _fail(f"--storage: {exc}", EXIT_INVALID)
    options = RunOptions(
        tracking_uri=tracking_uri, storage=storage, address=address, spec_path=spec_path
    )
    try:
        result = run_sweep(spec, options)
    except SpecError as exc:
        _fail(f"{spec_path}: {exc.line()}", EXIT_INVALID)
    except (SweepFailed, TrackingError, RayUnavailable) as exc:
        _fail(str(exc), EXIT_FAILED)
    except SweepInterrupted as exc:
        _fail(
            f"interrupted; Ray Tune saved the sweep's state in {exc.experiment_path}; "
            "its MLflow runs are marked KILLED",
            EXIT_INTERRUPTED,
        )
    except KeyboardInterrupt:
        _fail("interrupted; the sweep's MLflow run is marked KILLED", EXIT_INTERRUPTED)
    _print_summary(result)


def _print_summary(result: SweepResult) -> None:
    out = Console(highlight=False, soft_wrap=True)
    best = result.best
    finished = result.num_trials - result.num_stopped_early - result.num_failed
    out.print(
        f"\n{result.num_trials} trials: {finished} finished, "
        f"{result.num_stopped_early} stopped early by ASHA, {result.num_failed} failed"
    )
    out.print(f"best trial {best.trial_id}: {best.metric} = {best.value:.6g}", markup=False)
    for name, value in best.params.items():
        out.print(f"  {name} = {value}", markup=False)
    out.print(
        f"MLflow: experiment '{result.name}', sweep run {result.parent_run_id}, "
        f"best trial run {best.run_id}",
        markup=False,
    )
    if result.tracking_uri.startswith("sqlite"):
        browse = f"mlflow ui --backend-store-uri {result.tracking_uri}"
    else:
        browse = (
            f"{result.tracking_uri}/#/experiments/{result.experiment_id}"
            f"/runs/{result.parent_run_id}"
        )
    out.print(f"  browse: {browse}", markup=False)
    out.print(f"checkpoint: {best.checkpoint}", markup=False)
    if result.test_metrics:
        scores = ", ".join(f"{k} = {v:.6g}" for k, v in result.test_metrics.items())
        out.print(f"best model on the test split (never seen by the search): {scores}")


@app.command()
def best(
    name_or_spec: Annotated[
        str, typer.Argument(metavar="NAME_OR_SPEC", help="Sweep name or sweep file.")
    ],
    tracking_uri: TrackingUri = DEFAULT_TRACKING_URI,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the best trial of the latest finished sweep, as recorded in MLflow."""
    name = name_or_spec
    if name_or_spec.endswith((".yaml", ".yml")) or Path(name_or_spec).is_file():
        name = _load(Path(name_or_spec)).name
    from tuner.report import SweepNotFound, best_of_sweep

    try:
        report = best_of_sweep(name, tracking_uri)
    except SweepNotFound as exc:
        _fail(str(exc), EXIT_FAILED)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2, sort_keys=True))
        return
    typer.echo(f"sweep {report.sweep}: best trial {report.trial_id}")
    typer.echo(f"  {report.metric} = {report.value:.6g} ({report.mode})")
    for key, value in sorted(report.params.items()):
        typer.echo(f"  {key} = {value}")
    typer.echo(f"  mlflow run: {report.run_id} (sweep run {report.parent_run_id})")
    typer.echo(f"  checkpoint: {report.checkpoint or '-'}")


@app.command("preemption-watch")
def preemption_watch(
    address: Annotated[
        str | None, typer.Option(help="The Ray cluster's GCS address (HEAD:6379).")
    ] = None,
    node_id: Annotated[
        str | None, typer.Option(help="Ray node to drain (default: the node this runs on).")
    ] = None,
    metadata_url: Annotated[
        str, typer.Option(help="EC2 instance metadata service (IMDSv2).")
    ] = "http://169.254.169.254",
    poll_seconds: Annotated[float, typer.Option(min=0.05, help="Seconds between polls.")] = 5.0,
) -> None:
    """Run on a spot worker: drain its Ray node when EC2 announces an interruption."""
    import subprocess

    from tuner.preemption import MetadataService, drain_with_ray, watch

    log = Console(highlight=False, soft_wrap=True)
    try:
        notice = watch(
            MetadataService(metadata_url),
            drain_with_ray(address, node_id),
            poll_seconds,
            log=lambda line: log.print(line, markup=False),
        )
    except subprocess.CalledProcessError as exc:
        _fail(f"ray drain-node failed with exit status {exc.returncode}", EXIT_FAILED)
    log.print(
        f"drained node {node_id or '(this node)'} with reason PREEMPTION; "
        f"{notice.seconds_left()} s left before EC2 acts",
        markup=False,
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
