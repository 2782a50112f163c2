"""The `tuner` command: thin wrappers over tuner's API. Exit 0 ok, 1 failed sweep, 2 bad input."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn
from urllib.parse import urlparse

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


def _with_num_samples(spec: SweepSpec, num_samples: int | None) -> SweepSpec:
    if num_samples is None:
        return spec
    try:
        return spec.with_num_samples(num_samples)
    except SpecError as exc:
        _fail(f"--num-samples: {exc.problem}", EXIT_INVALID)


def _check_storage(storage: str | None) -> None:
    from tuner.storage import resolve_storage

    try:
        resolve_storage(storage)
    except ValueError as exc:
        _fail(f"--storage: {exc}", EXIT_INVALID)


@app.command()
def run(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Sweep file to run.")],
    tracking_uri: TrackingUri = DEFAULT_TRACKING_URI,
    storage: StorageOption = None,
    num_samples: NumSamples = None,
    address: Annotated[
        str | None,
        typer.Option(help="Join this Ray cluster (HEAD:6379, or auto) instead of starting one."),
    ] = None,
) -> None:
    """Run a sweep: embedded Ray and local MLflow unless told otherwise."""
    spec = _with_num_samples(_load(spec_path), num_samples)
    _check_storage(storage)
    # Imported here: `tuner validate` and `--help` must not pay for Ray and torch.
    from tuner.runner import RunOptions, run_sweep

    options = RunOptions(
        tracking_uri=tracking_uri, storage=storage, address=address, spec_path=spec_path
    )
    _drive(lambda: run_sweep(spec, options), spec_path)


@app.command()
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
) -> None:
    """Finish an interrupted sweep from its storage; its MLflow runs continue."""
    name = _sweep_name(sweep)
    if address and urlparse(address).scheme in ("http", "https"):
        from tuner.cluster import ClusterError

        try:
            _submit_resume(name, address, storage, tracking_uri)
        except ClusterError as exc:
            _fail(str(exc), EXIT_FAILED)
        return
    _check_storage(storage)
    from tuner.runner import RunOptions, resume_sweep

    options = RunOptions(
        tracking_uri=tracking_uri or DEFAULT_TRACKING_URI, storage=storage, address=address
    )
    _drive(lambda: resume_sweep(name, options), None)


def _drive(sweep: Callable[[], SweepResult], spec_path: Path | None) -> None:
    """Run or resume a sweep in this process; map its failures to one line and an exit code."""
    from tuner.experiments import NothingToResume
    from tuner.ray_session import RayUnavailable
    from tuner.runner import SweepFailed, SweepInterrupted
    from tuner.tracking import TrackingError

    try:
        result = sweep()
    except SpecError as exc:
        _fail(f"{spec_path}: {exc.line()}" if spec_path else exc.line(), EXIT_INVALID)
    except (SweepFailed, TrackingError, RayUnavailable, NothingToResume) as exc:
        _fail(str(exc), EXIT_FAILED)
    except SweepInterrupted as exc:
        _fail(
            f"interrupted; Ray Tune saved the sweep's state in {exc.experiment_path}; "
            f"its MLflow runs are marked KILLED; `tuner resume {exc.sweep}` continues it",
            EXIT_INTERRUPTED,
        )
    except KeyboardInterrupt:
        _fail("interrupted; the sweep's MLflow run is marked KILLED", EXIT_INTERRUPTED)
    _print_summary(result)


def _sweep_name(name_or_spec: str) -> str:
    if name_or_spec.endswith((".yaml", ".yml")) or Path(name_or_spec).is_file():
        return _load(Path(name_or_spec)).name
    return name_or_spec


@app.command()
def submit(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Sweep file to submit.")],
    storage: StorageOption = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(envvar="MLFLOW_TRACKING_URI", help="The cluster's MLflow server URL."),
    ] = None,
    num_samples: NumSamples = None,
    address: JobsAddress = None,
) -> None:
    """Submit a sweep to a Ray cluster; its driver runs on the head node."""
    spec = _with_num_samples(_load(spec_path), num_samples)
    working_dir = Path.cwd()
    try:
        relative_spec = spec_path.resolve().relative_to(working_dir)
    except ValueError:
        _fail(
            f"{spec_path}: the sweep file must be inside the working directory {working_dir} "
            "(it is uploaded with the job)",
            EXIT_INVALID,
        )
    storage, tracking_uri = _cluster_locations(storage, tracking_uri)
    from tuner.cluster import Cluster, ClusterError, check_jobs_address

    command = ["run", str(relative_spec), "--address", "auto"]
    command += ["--storage", storage, "--tracking-uri", tracking_uri]
    if num_samples is not None:
        command += ["--num-samples", str(num_samples)]
    try:
        cluster = Cluster(check_jobs_address(address))
        job_id = cluster.submit(
            spec,
            command,
            working_dir=working_dir,
            storage=storage,
            tracking_uri=tracking_uri,
            action="run",
        )
    except ClusterError as exc:
        _fail(str(exc), EXIT_FAILED)
    typer.echo(f"submitted sweep {spec.name} as job {job_id}")
    typer.echo(f"  follow it: tuner status {spec.name} / tuner logs {spec.name} --follow")


def _cluster_locations(storage: str | None, tracking_uri: str | None) -> tuple[str, str]:
    """A cluster sweep needs storage every node shares and a tracking server to browse."""
    if not storage:
        _fail("--storage: a cluster sweep needs shared storage (s3://bucket/prefix)", EXIT_INVALID)
    _check_storage(storage)
    if not tracking_uri or urlparse(tracking_uri).scheme not in ("http", "https"):
        _fail(
            "--tracking-uri: a cluster sweep needs an MLflow server (http://HEAD:5000); "
            "a local store would stay on the head node",
            EXIT_INVALID,
        )
    return storage, tracking_uri


def _submit_resume(name: str, address: str, storage: str | None, tracking_uri: str | None) -> None:
    from tuner.cluster import Cluster, ClusterError, check_jobs_address
    from tuner.experiments import NothingToResume, latest_experiment
    from tuner.storage import resolve_storage

    cluster = Cluster(check_jobs_address(address))
    previous = cluster.jobs(name)
    if previous and not previous[-1].finished:
        raise ClusterError(f"sweep {name} is still running as job {previous[-1].submission_id}")
    # Where the sweep ran before, unless told otherwise (a new head has no job history).
    if previous:
        storage = storage or previous[-1].storage
        tracking_uri = tracking_uri or previous[-1].tracking_uri
    storage, tracking_uri = _cluster_locations(storage, tracking_uri)
    try:  # the job would only find out on the head what can be checked here
        spec = latest_experiment(resolve_storage(storage), name).load_spec()
    except NothingToResume as exc:
        _fail(str(exc), EXIT_FAILED)
    command = ["resume", name, "--address", "auto"]
    command += ["--storage", storage, "--tracking-uri", tracking_uri]
    job_id = cluster.submit(
        spec,
        command,
        working_dir=Path.cwd(),
        storage=storage,
        tracking_uri=tracking_uri,
        action="resume",
    )
    typer.echo(f"resuming sweep {name} as job {job_id}")


@app.command()
def status(
    sweep: Annotated[
        str | None, typer.Argument(metavar="[SWEEP]", help="Sweep name or job id.")
    ] = None,
    address: JobsAddress = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow URL to read trials from (default: the one submitted with)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """State of each submitted sweep: its job, trial counts by state, best so far."""
    from tuner.cluster import INTERRUPTED, Cluster, ClusterError, check_jobs_address, trial_counts

    try:
        cluster = Cluster(check_jobs_address(address))
        jobs = cluster.jobs(sweep)
    except ClusterError as exc:
        _fail(str(exc), EXIT_FAILED)
    if sweep is not None and not jobs:
        _fail(f"no sweep or job named {sweep!r} on the cluster", EXIT_FAILED)
    rows = []
    for job in jobs:
        counts, problem = None, ""
        uri = tracking_uri or job.tracking_uri
        if uri:
            try:
                counts = trial_counts(uri, job.sweep, job.submission_id, job_ended=job.finished)
            except Exception as exc:  # the job's state is still worth showing
                problem = f"MLflow unreachable: {type(exc).__name__}"
        rows.append((job, counts, problem))
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "sweep": job.sweep,
                        "job": job.submission_id,
                        "action": job.action,
                        "status": job.status,
                        "message": job.message,
                        **(counts.as_dict() if counts else {}),
                    }
                    for job, counts, _ in rows
                ],
                indent=2,
            )
        )
        return
    if not rows:
        typer.echo("no sweeps submitted to this cluster")
    for job, counts, problem in rows:
        line = f"{job.sweep}  job {job.submission_id} ({job.action}): {job.status}"
        if counts:
            states = ", ".join(f"{n} {state}" for state, n in counts.by_state.items())
            line += f"; {counts.total} trials ({states})"
            if counts.best_value is not None:
                line += (
                    f"; best {counts.metric} = {counts.best_value:.6g} (trial {counts.best_trial})"
                )
            if INTERRUPTED.lower() in counts.by_state:
                line += f"; `tuner resume {job.sweep}` finishes it"
        elif problem:
            line += f"; {problem}"
        if job.status == "FAILED" and job.message:
            line += f"; {job.message}"
        typer.echo(line)


@app.command()
def logs(
    sweep: Annotated[str, typer.Argument(metavar="SWEEP", help="Sweep name or job id.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream until it ends.")] = False,
    address: JobsAddress = None,
) -> None:
    """The driver's output of a sweep's latest job."""
    from tuner.cluster import Cluster, ClusterError, check_jobs_address

    try:
        cluster = Cluster(check_jobs_address(address))
        job = cluster.latest(sweep)
        if follow:
            cluster.follow_logs(job, lambda text: (sys.stdout.write(text), sys.stdout.flush()))
        else:
            sys.stdout.write(cluster.logs(job))
    except ClusterError as exc:
        _fail(str(exc), EXIT_FAILED)


@app.command()
def stop(
    sweep: Annotated[str, typer.Argument(metavar="SWEEP", help="Sweep name or job id.")],
    address: JobsAddress = None,
    wait: Annotated[bool, typer.Option(help="Wait until the driver has saved and ended.")] = True,
) -> None:
    """Stop a submitted sweep; Ray Tune saves its state so `tuner resume` can continue it."""
    from tuner.cluster import Cluster, ClusterError, check_jobs_address

    try:
        cluster = Cluster(check_jobs_address(address))
        job = cluster.latest(sweep)
        if job.finished:
            _fail(f"job {job.submission_id} already ended: {job.status}", EXIT_FAILED)
        cluster.stop(job)
        typer.echo(f"stopping job {job.submission_id}")
        state = cluster.wait_until_ended(job) if wait else job.status
    except ClusterError as exc:
        _fail(str(exc), EXIT_FAILED)
    typer.echo(f"job {job.submission_id}: {state}; `tuner resume {job.sweep}` continues it")


def _print_summary(result: SweepResult) -> None:
    out = Console(highlight=False, soft_wrap=True)
    best = result.best
    finished = result.num_trials - result.num_stopped_early - result.num_failed
    out.print(
        f"\n{result.num_trials} trials: {finished} finished, "
        f"{result.num_stopped_early} stopped early by ASHA, {result.num_failed} failed"
        + (
            f"; {result.num_restarted} restarted from a checkpoint after losing a worker"
            if result.num_restarted
            else ""
        )
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
