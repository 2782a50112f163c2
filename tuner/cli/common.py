"""What every command shares: exit codes, the one-line error, loading a sweep file, options."""

from __future__ import annotations

import errno
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
import yaml
from rich.console import Console

from tuner.cli.json_errors import echo_error
from tuner.engine.loading import load_spec
from tuner.engine.phases import Phases
from tuner.spec import SpecError, SweepSpec
from tuner.spec.errors import printable
from tuner.spec.limits import SweepFileLoader

if TYPE_CHECKING:
    pass

EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl-C: 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM

stderr = Console(stderr=True, highlight=False, soft_wrap=True)

TrackingUri = Annotated[
    str, typer.Option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI.")
]


def fail(message: str, code: int) -> NoReturn:
    # Escaped: a message may quote a trial's exception ("its first 3 trials all failed
    # with ..."), whose escape sequences a terminal would obey. JSON escapes its own.
    stderr.print(printable(f"error: {message}"), markup=False)
    echo_error(message, code)  # on stdout too, under --json
    raise typer.Exit(code)


def load(path: Path, *, check_trainable: bool = True) -> SweepSpec:
    try:
        return load_spec(path, check_trainable=check_trainable)
    except SpecError as exc:
        fail(exc.line(), EXIT_INVALID)


StorageOption = Annotated[
    str | None,
    typer.Option(
        envvar="TUNER_STORAGE",
        help="Folder or s3:// URI for checkpoints and Ray state (default: ./tuner_runs).",
    ),
]
NumSamples = Annotated[int | None, typer.Option(help="Override the sweep file's num_samples.")]
JobsAddress = Annotated[
    str | None,
    typer.Option(
        "--address", envvar="RAY_ADDRESS", help="The cluster's Jobs API: http://HEAD:8265."
    ),
]


def with_num_samples(spec: SweepSpec, num_samples: int | None) -> SweepSpec:
    if num_samples is None:
        return spec
    try:
        return spec.with_num_samples(num_samples)
    except SpecError as exc:
        fail(f"--num-samples: {exc.problem}", EXIT_INVALID)


Register = Annotated[
    str | None,
    typer.Option(help="Register the best model in MLflow's Model Registry under this name."),
]


def with_register(spec: SweepSpec, name: str | None) -> SweepSpec:
    """The sweep with `register: NAME` from the command line, checked as the file's is."""
    if name is None:
        return spec
    import yaml

    from tuner.spec import parse_spec

    try:
        return parse_spec({**yaml.safe_load(spec.as_yaml()), "register": name})
    except SpecError as exc:
        fail(f"--register: {exc.problem}", EXIT_INVALID)


def check_storage(storage: str | None, *, reach: bool = True) -> None:
    """`reach`: this process writes the storage (a cluster's nodes do, for submit)."""
    from tuner.engine.storage import check_writable, resolve_storage

    try:
        check_writable(resolve_storage(storage), reach=reach)
    except ValueError as exc:
        fail(f"--storage: {exc}", EXIT_INVALID)


def sweep_name(name_or_spec: str) -> str:
    """For commands that only read a sweep back: its trainable is not imported (its
    import-time code not run), and need not import from here."""
    return sweep_named(name_or_spec, check_trainable=False)[0]


def sweep_named(name_or_spec: str, *, check_trainable: bool = True) -> tuple[str, SweepSpec | None]:
    """(the sweep's name, its sweep file when the argument is one)."""
    if name_or_spec.endswith((".yaml", ".yml")) or Path(name_or_spec).is_file():
        spec = load(Path(name_or_spec), check_trainable=check_trainable)
        return spec.name, spec
    return name_or_spec, None


Profile = Annotated[
    bool, typer.Option("--profile", help="Print where the wall time went, phase by phase.")
]


def cli_phases() -> Phases:
    """The sweep's phase clock, started with the process (imports count)."""
    phases = Phases()
    phases.mark("command started")
    return phases


def print_phases(phases: Phases) -> None:
    stderr.print("\nphase                           at s    took s", markup=False)
    for name, at, took in phases.table():
        stderr.print(f"{name:<30} {at:>6} {took:>9}", markup=False)


class Terminated(KeyboardInterrupt):
    """SIGTERM outside the trials' fit (starting, exporting the best model): ended like
    Ctrl-C, so that every run is closed, with 143 as its exit status."""

    signal_name = "SIGTERM"  # what the engine's resume advice says (engine.closing)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM's default ends the process where it stands, runs left RUNNING (and Ray's
    core dumping its stack): turn it into an interrupt that the sweep's clean-up sees."""

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def disk_full(exc: BaseException) -> OSError | None:
    """The ENOSPC behind `exc`, however Ray or MLflow wrapped it; None if there is none."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return current
        if "No space left on device" in str(current) or "database or disk is full" in str(current):
            return OSError(errno.ENOSPC, str(current).splitlines()[0])
        current = current.__cause__ or current.__context__
    return None


def held_line(cost: dict[str, float]) -> str:
    """e.g. "0.0123 CPU-hours, 0 GPU-hours ($0.0005)": what the trials held, and cost."""
    line = (f"{amount(cost.get('cpu_hours', 0.0))} CPU-hours, "
            f"{amount(cost.get('gpu_hours', 0.0))} GPU-hours")  # fmt: skip
    if "cost_usd" not in cost:
        return line
    dollars = amount(cost["cost_usd"])
    return line + (f" (<${dollars[1:]})" if dollars.startswith("<") else f" (${dollars})")


def amount(value: float) -> str:
    """Hours or dollars as a person reads them: four significant digits and never an
    exponent (a second's trial held 9.607e-06 CPU-hours, which read as nine)."""
    if value == 0:
        return "0"
    if abs(value) < 1e-4:
        return "<0.0001"
    if abs(value) >= 1e4:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def budget_changes(text: str | None) -> dict[str, Any] | None:
    """`--budget '{max_wall: 2h}'` as a mapping; one line and exit 2 if it is not one."""
    if text is None:
        return None
    try:  # the sweep file's loader: its values refused alike, as one line
        changes = yaml.load(text, Loader=SweepFileLoader)
    except yaml.YAMLError as exc:
        fail(f"--budget: not YAML: {str(exc).splitlines()[0]}", EXIT_INVALID)
    except RecursionError:
        fail("--budget: nested too deeply to be a mapping of limits", EXIT_INVALID)
    if not isinstance(changes, dict) or not changes:
        fail("--budget: give limits as a mapping, e.g. '{max_wall: 2h, max_usd: 80}'", EXIT_INVALID)
    return {str(key): value for key, value in changes.items()}
