"""Commands that run a sweep here and read it back: validate, run, resume, best."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from tuner.defaults import DEFAULT_TRACKING_URI
from tuner.engine.loading import load_spec
from tuner.engine.malloc_arenas import cap_malloc_arenas
from tuner.spec import SpecError
from tuner.spec.errors import printable

if TYPE_CHECKING:
    from tuner.engine.outcome import SweepResult

from tuner.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_TERMINATED,
    NumSamples,
    Profile,
    Register,
    StorageOption,
    Terminated,
    TrackingUri,
    budget_changes,
    check_storage,
    cli_phases,
    disk_full,
    fail,
    load,
    print_phases,
    sigterm_as_interrupt,
    stderr,
    sweep_name,
    sweep_named,
    with_num_samples,
    with_register,
)
from tuner.cli.json_errors import json_errors
from tuner.cli.remote import submit_resume
from tuner.cli.summary import print_summary

T = TypeVar("T")


def validate(
    specs: Annotated[list[Path], typer.Argument(metavar="SPEC", help="Sweep files to check.")],
) -> None:
    """Check sweep files without starting Ray. Exit 2 if any is invalid."""
    invalid = 0
    for path in specs:
        try:
            spec = load_spec(path, hold_data=False)  # checked, not kept: bounded memory
        except SpecError as exc:
            invalid += 1
            stderr.print(f"error: {exc.line()}", markup=False)
            continue
        # A file's name may hold a line break or a terminal's escape codes: shown escaped.
        shown = printable(str(path))
        typer.echo(
            f"ok: {shown} ({spec.expected_trials()} trials, {spec.searcher_label} search, "
            f"{spec.scheduler.kind} scheduler, {len(spec.params)} params)"
        )
        for warning in spec.warnings():
            stderr.print(f"warning: {shown}: {printable(warning)}", markup=False)
    if invalid:
        raise typer.Exit(EXIT_INVALID)


def run(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Sweep file to run.")],
    tracking_uri: TrackingUri = DEFAULT_TRACKING_URI,
    storage: StorageOption = None,
    num_samples: NumSamples = None,
    address: Annotated[
        str | None,
        typer.Option(help="Join this Ray cluster (HEAD:6379, or auto) instead of starting one."),
    ] = None,
    profile: Profile = False,
    register: Register = None,
) -> None:
    """Run a sweep: embedded Ray and local MLflow unless told otherwise."""
    phases = cli_phases()
    with phases.phase("sweep file checked"):
        spec = with_register(with_num_samples(load(spec_path), num_samples), register)
        check_storage(storage)
    cap_malloc_arenas()  # before Ray and MLflow start threads (tuner.engine.malloc_arenas)
    # Imported here: `tuner validate` and `--help` must not pay for Ray and torch.
    with phases.phase("imports (ray, mlflow)"):
        from tuner.engine.runner import RunOptions, run_sweep

    options = RunOptions(
        tracking_uri=tracking_uri,
        storage=storage,
        address=address,
        spec_path=spec_path,
        phases=phases,
        on_finish=print_summary,
    )
    _drive(lambda: run_sweep(spec, options), spec_path, options.tracking_uri)
    if profile:
        print_phases(phases)


def resume(
    sweep: Annotated[str, typer.Argument(metavar="SWEEP", help="Sweep name or sweep file.")],
    tracking_uri: Annotated[
        str | None,
        typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI."),
    ] = None,
    storage: StorageOption = None,
    address: Annotated[
        str | None,
        typer.Option(
            envvar="RAY_ADDRESS",
            help="http://HEAD:8265 resumes as a job on the cluster; HEAD:6379 or auto joins it "
            "from here; none resumes on an embedded Ray.",
        ),
    ] = None,
    profile: Profile = False,
    budget: Annotated[
        str | None,
        typer.Option(
            help="New budget limits, as in the sweep file: '{max_wall: 2h, max_usd: 80}'. "
            "A sweep its budget stopped goes on with them."
        ),
    ] = None,
) -> None:
    """Finish an interrupted sweep from its storage; its MLflow runs continue."""
    phases = cli_phases()
    name, sweep_file = sweep_named(sweep)
    changes = budget_changes(budget)
    # By its scheme alone: urlparse raised on "http://[::1" before the address was checked.
    if address and address.lower().startswith(("http://", "https://")):
        from tuner.cluster.jobs import ClusterError

        try:
            submit_resume(name, address, storage, tracking_uri, budget)
        except ClusterError as exc:
            fail(str(exc), EXIT_FAILED)
        return
    check_storage(storage)
    cap_malloc_arenas()  # as `run` does
    with phases.phase("imports (ray, mlflow)"):
        from tuner.engine.runner import RunOptions, resume_sweep

    options = RunOptions(
        tracking_uri=tracking_uri or DEFAULT_TRACKING_URI,
        storage=storage,
        address=address,
        phases=phases,
        on_finish=print_summary,
        budget=changes,
    )
    _drive(lambda: resume_sweep(name, options, sweep_file), None, options.tracking_uri)
    if profile:
        print_phases(phases)


def _drive(sweep: Callable[[], SweepResult], spec_path: Path | None, tracking_uri: str) -> None:
    """Run or resume a sweep in this process; map its failures to one line and an exit code.

    The summary is printed by the sweep itself (RunOptions.on_finish), before Ray shuts down.
    """
    from tuner.cli.resume_advice import interrupted_line
    from tuner.engine.experiments import NothingToResume
    from tuner.engine.outcome import SweepFailed, SweepInterrupted
    from tuner.engine.session import RayUnavailable
    from tuner.engine.state_digest import StateChanged
    from tuner.tracking.access import TrackingLoginError, tracking_access
    from tuner.tracking.writer import TrackingError

    try:
        with tracking_access(tracking_uri), sigterm_as_interrupt():
            sweep()
    except SpecError as exc:
        fail(f"{spec_path}: {exc.line()}" if spec_path else exc.line(), EXIT_INVALID)
    except TrackingLoginError as exc:  # who the user is, not what went wrong: fix and rerun
        fail(str(exc), EXIT_INVALID)
    except (SweepFailed, TrackingError, RayUnavailable, NothingToResume, StateChanged) as exc:
        fail(str(exc), EXIT_FAILED)
    except SweepInterrupted as exc:
        terminated = exc.signal_name == "SIGTERM"
        fail(
            interrupted_line(exc, spec_path, tracking_uri),
            EXIT_TERMINATED if terminated else EXIT_INTERRUPTED,
        )
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        # A resume's comes before the sweep went on (SweepInterrupted after): nothing changed.
        done = "the sweep's MLflow run is marked KILLED"
        if spec_path is None:
            done = "the sweep is as it was; the same `tuner resume` continues it"
        how = "terminated" if terminated else "interrupted"
        fail(f"{how}; {done}", EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)
    except Exception as exc:
        full = disk_full(exc)
        if full is None:
            raise
        where = f" writing {full.filename}" if full.filename else ""
        fail(
            f"no space left on the device{where}: free some and `tuner resume` continues "
            "the sweep from the state Ray last saved",
            EXIT_FAILED,
        )


@json_errors
def best(
    name_or_spec: Annotated[
        str, typer.Argument(metavar="NAME_OR_SPEC", help="Sweep name or sweep file.")
    ],
    tracking_uri: TrackingUri = DEFAULT_TRACKING_URI,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the best trial of the latest finished sweep, as recorded in MLflow."""
    name = sweep_name(name_or_spec)
    from tuner.tracking.best import best_of_sweep

    report = _read_sweep_back(tracking_uri, lambda: best_of_sweep(name, tracking_uri))
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2, sort_keys=True))
        return
    if report.front:
        from tuner.cli.summary import front_lines

        shown = ", ".join(f"{metric} ({mode})" for metric, mode in report.objectives)
        typer.echo(f"sweep {report.sweep}: Pareto front of {len(report.front)} trials, {shown}")
        for line in front_lines(report.front):
            typer.echo(line)
    typer.echo(f"sweep {report.sweep}: best trial {report.trial_id}")
    typer.echo(f"  {report.metric} = {report.value:.6g} ({report.mode})")
    from tuner.cli.summary import param_lines

    for line in param_lines(dict(sorted(report.params.items()))):
        typer.echo(line)
    typer.echo(f"  mlflow run: {report.run_id} (sweep run {report.parent_run_id})")
    typer.echo(f"  checkpoint: {report.checkpoint or '-'}")
    if report.classes:
        typer.echo(f"  classes: {report.classes} (the label of each model output, in order)")
    if report.schedule:
        typer.echo(
            "  schedule (the values its weights were trained with, by first epoch; "
            "paste under config to train with it):"
        )
        typer.echo(textwrap.indent(report.schedule.rstrip(), "    "))


def _read_sweep_back(tracking_uri: str, read: Callable[[], T]) -> T:
    """A command that reads a sweep from MLflow: the store checked in seconds (and not
    created where there is none); a refused login exit 2, a missing sweep or store 1."""
    from tuner.tracking.access import (
        TrackingLoginError,
        check_tracking_reachable,
        tracking_access,
    )
    from tuner.tracking.best import SweepNotFound
    from tuner.tracking.writer import TrackingError

    try:
        check_tracking_reachable(tracking_uri, must_exist=True)
        with tracking_access(tracking_uri):
            return read()
    except TrackingLoginError as exc:
        fail(str(exc), EXIT_INVALID)
    except (SweepNotFound, TrackingError) as exc:
        fail(str(exc), EXIT_FAILED)


def sync(
    journal: Annotated[
        Path, typer.Argument(metavar="JOURNAL", help="A journal a sweep saved (its last line).")
    ],
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow to write to (default: the one the journal was kept for)."),
    ] = None,
) -> None:
    """Write the tracking writes a sweep kept while its MLflow server did not answer."""
    from tuner.tracking.sync import sync_journal
    from tuner.tracking.writer import TrackingError

    try:
        written = sync_journal(journal, tracking_uri)
    except ValueError as exc:
        fail(str(exc), EXIT_INVALID)
    except TrackingError as exc:
        fail(str(exc), EXIT_FAILED)
    typer.echo(f"{written} tracking writes made; {journal} removed")


def report(
    name_or_spec: Annotated[
        str, typer.Argument(metavar="NAME_OR_SPEC", help="Sweep name or sweep file.")
    ],
    tracking_uri: TrackingUri = DEFAULT_TRACKING_URI,
    out: Annotated[
        Path | None, typer.Option(help="Folder for the report (default: tuner_reports/NAME).")
    ] = None,
    open_it: Annotated[bool, typer.Option("--open", help="Open report.html afterwards.")] = False,
    log: Annotated[
        bool, typer.Option("--log", help="Also log it to the sweep's MLflow run (plots/).")
    ] = False,
) -> None:
    """Plots and a self-contained report.html of a sweep, finished or running, from MLflow."""
    name = sweep_name(name_or_spec)
    from tuner.tracking.big_sweeps import prefetch_importances

    prefetch_importances()  # while the sweep is read back
    from tuner.tracking.report import write_report
    from tuner.tracking.study import read_sweep

    folder = out or Path("tuner_reports") / name
    if folder.exists() and not folder.is_dir():
        fail(f"--out: {folder} is a file, not a folder", EXIT_INVALID)
    sweep = _read_sweep_back(tracking_uri, lambda: read_sweep(name, tracking_uri))
    try:
        made = write_report(sweep, folder)
    except OSError as exc:  # a folder we may not write, a file on the way to it
        fail(f"--out: cannot write {exc.filename or folder}: {exc.strerror or exc}", EXIT_INVALID)
    typer.echo(f"report: {made.html} ({len(made.plots)} plots)")
    if log:
        from mlflow import MlflowClient

        from tuner.tracking.plots_in_mlflow import PLOTS_ARTIFACT

        run = sweep.parent.info
        client = MlflowClient(tracking_uri)
        _read_sweep_back(  # a login that may read but not write the run: one line
            tracking_uri, lambda: client.log_artifacts(run.run_id, str(folder), PLOTS_ARTIFACT)
        )
        typer.echo(f"logged to the sweep's MLflow run: {run.artifact_uri}/{PLOTS_ARTIFACT}/")
    for plot, why in made.skipped.items():
        typer.echo(printable(f"  not drawn: {plot}: {why}"))  # an error's text, escaped
    if open_it:
        import webbrowser

        webbrowser.open(made.html.resolve().as_uri())
