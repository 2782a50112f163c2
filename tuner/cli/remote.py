"""Commands for sweeps on a Ray cluster: submit, status, logs, stop, the preemption watcher."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import urlparse

import typer
from rich.console import Console

from tuner.cli.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    JobsAddress,
    NumSamples,
    StorageOption,
    check_storage,
    fail,
    held_line,
    load,
    with_num_samples,
)
from tuner.cli.json_errors import json_errors
from tuner.spec.secrets import has_login


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
    spec = with_num_samples(load(spec_path), num_samples)
    _, withheld = spec.without_secrets()
    if withheld:
        key = next(iter(withheld))
        fail(
            f"{spec_path}: config.{key}: a secret written in the sweep file would be uploaded "
            "to the cluster with the job; write the whole value as ${env:NAME} and set NAME on the "
            "cluster's nodes (docs/secrets.md)",
            EXIT_INVALID,
        )
    working_dir = Path.cwd()
    try:
        relative_spec = spec_path.resolve().relative_to(working_dir)
    except ValueError:
        fail(
            f"{spec_path}: the sweep file must be inside the working directory {working_dir} "
            "(it is uploaded with the job)",
            EXIT_INVALID,
        )
    storage, tracking_uri = cluster_locations(storage, tracking_uri)
    from tuner.cluster.jobs import Cluster, ClusterError, check_jobs_address

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
        fail(str(exc), EXIT_FAILED)
    typer.echo(f"submitted sweep {spec.name} as job {job_id}")
    typer.echo(f"  follow it: tuner status {spec.name} / tuner logs {spec.name} --follow")


def cluster_locations(storage: str | None, tracking_uri: str | None) -> tuple[str, str]:
    """A cluster sweep needs storage every node shares and a tracking server to browse."""
    if tracking_uri and has_login(tracking_uri):
        from tuner.tracking.access import redacted

        # Checked first: the URI goes into the job's metadata and command line, which
        # anyone with the cluster's token reads in the dashboard. The same rule as the
        # job's own preflight, which would refuse a login on the cluster, minutes later.
        fail(
            f"--tracking-uri {redacted(tracking_uri)}: put the login in "
            "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD on the cluster's nodes, "
            "not in the URI (it would be stored with the job)",
            EXIT_INVALID,
        )
    if not storage:
        fail("--storage: a cluster sweep needs shared storage (s3://bucket/prefix)", EXIT_INVALID)
    check_storage(storage, reach=False)  # the cluster's nodes have its login, maybe not we
    if not tracking_uri or urlparse(tracking_uri).scheme not in ("http", "https"):
        fail(
            "--tracking-uri: a cluster sweep needs an MLflow server (http://HEAD:5000); "
            "a local store would stay on the head node",
            EXIT_INVALID,
        )
    return storage, tracking_uri


def submit_resume(
    name: str,
    address: str,
    storage: str | None,
    tracking_uri: str | None,
    budget: str | None = None,
) -> None:
    from tuner.cluster.jobs import Cluster, ClusterError, check_jobs_address, shown
    from tuner.engine.experiments import NothingToResume, latest_experiment
    from tuner.engine.storage import resolve_storage

    cluster = Cluster(check_jobs_address(address))
    previous = cluster.jobs(name)
    if previous and not previous[-1].finished:
        raise ClusterError(f"sweep {name} is still running as job {previous[-1].submission_id}")
    # Where the sweep ran before, unless told otherwise (a new head has no job history).
    if previous:
        storage = storage or previous[-1].storage
        tracking_uri = tracking_uri or previous[-1].tracking_uri
    elif not (storage and tracking_uri):
        fail(
            f"sweep {shown(name)}: the cluster at {cluster.address} has no job of that "
            "name to resume from; to resume it from its storage, give --storage s3://... and "
            "--tracking-uri http://... as it was submitted with",
            EXIT_FAILED,
        )
    storage, tracking_uri = cluster_locations(storage, tracking_uri)
    try:  # the job would only find out on the head what can be checked here
        spec = latest_experiment(resolve_storage(storage), name).load_spec()
    except NothingToResume as exc:
        fail(str(exc), EXIT_FAILED)
    command = ["resume", name, "--address", "auto"]
    command += ["--storage", storage, "--tracking-uri", tracking_uri]
    command += ["--budget", budget] if budget is not None else []
    job_id = cluster.submit(
        spec,
        command,
        working_dir=Path.cwd(),
        storage=storage,
        tracking_uri=tracking_uri,
        action="resume",
    )
    typer.echo(f"resuming sweep {name} as job {job_id}")


@json_errors
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
    from tuner.cli.job_rows import job_counts, json_row
    from tuner.cluster.jobs import Cluster, ClusterError, check_jobs_address, shown
    from tuner.tracking.status import INTERRUPTED

    try:
        cluster = Cluster(check_jobs_address(address))
        jobs = cluster.jobs(sweep)
    except ClusterError as exc:
        fail(str(exc), EXIT_FAILED)
    if sweep is not None and not jobs:
        fail(f"no sweep or job named {shown(sweep)} on the cluster", EXIT_FAILED)
    rows = [(job, *job_counts(job, tracking_uri)) for job in jobs]
    if as_json:
        typer.echo(json.dumps([json_row(*row) for row in rows], indent=2))
        return
    if not rows:
        typer.echo("no sweeps submitted to this cluster")
    for job, counts, problem in rows:
        line = f"{job.sweep}  job {job.submission_id} ({job.action}): {job.status}"
        if counts:
            states = ", ".join(f"{n} {state}" for state, n in counts.by_state.items())
            line += f"; {counts.total} trials ({states})"
            if counts.workers:
                line += f"; {counts.workers_line()}"
            if counts.best_value is not None:
                line += (
                    f"; best {counts.metric} = {counts.best_value:.6g} (trial {counts.best_trial})"
                )
            if counts.held:
                line += f"; held {held_line(counts.held)} by the trials that ended"
            if counts.lost_work_s:
                line += f"; {counts.lost_work_s:.1f} s of training redone after restarts"
            if INTERRUPTED.lower() in counts.by_state:
                line += f"; `tuner resume {job.sweep}` finishes it"
        elif problem:
            line += f"; {problem}"
        if job.status == "FAILED" and job.message:
            line += f"; {job.message}"
        typer.echo(line)


def logs(
    sweep: Annotated[str, typer.Argument(metavar="SWEEP", help="Sweep name or job id.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream until it ends.")] = False,
    address: JobsAddress = None,
) -> None:
    """The driver's output of a sweep's latest job."""
    from tuner.cluster.jobs import Cluster, ClusterError, check_jobs_address
    from tuner.cluster.log_text import printable

    try:
        cluster = Cluster(check_jobs_address(address))
        job = cluster.latest(sweep)
        if follow:
            cluster.follow_logs(
                job, lambda text: (sys.stdout.write(printable(text)), sys.stdout.flush())
            )
        else:
            sys.stdout.write(printable(cluster.logs(job)))
    except ClusterError as exc:
        fail(str(exc), EXIT_FAILED)


def stop(
    sweep: Annotated[str, typer.Argument(metavar="SWEEP", help="Sweep name or job id.")],
    address: JobsAddress = None,
    wait: Annotated[bool, typer.Option(help="Wait until the driver has saved and ended.")] = True,
) -> None:
    """Stop a submitted sweep; Ray Tune saves its state so `tuner resume` can continue it."""
    from tuner.cluster.jobs import Cluster, ClusterError, check_jobs_address

    try:
        cluster = Cluster(check_jobs_address(address))
        job = cluster.latest(sweep)
        if job.finished:
            fail(f"job {job.submission_id} already ended: {job.status}", EXIT_FAILED)
        cluster.stop(job)
        typer.echo(f"stopping job {job.submission_id}")
        state = cluster.wait_until_ended(job) if wait else job.status
    except ClusterError as exc:
        fail(str(exc), EXIT_FAILED)
    typer.echo(f"job {job.submission_id}: {state}; `tuner resume {job.sweep}` continues it")


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
    grace_seconds: Annotated[
        float, typer.Option(min=0, help="Most seconds to wait for the trials' checkpoints.")
    ] = 60.0,
) -> None:
    """Run on a spot worker: when EC2 announces an interruption, have the node's trials
    checkpoint now, then drain the node."""
    import subprocess

    from tuner.cluster.preemption import (
        MetadataService,
        Notice,
        TrialWarning,
        drain_with_ray,
        watch,
    )

    console = Console(highlight=False, soft_wrap=True)

    def log(line: str) -> None:
        console.print(line, markup=False)

    trials = TrialWarning(address, node_id, grace_seconds)
    drain = drain_with_ray(address, node_id)

    def warn_then_drain(notice: Notice) -> None:
        trials.warn(notice, log)
        drain(notice)

    try:
        notice = watch(
            MetadataService(metadata_url),
            warn_then_drain,
            poll_seconds,
            log=log,
            between_polls=lambda: trials.connect(log),
        )
    except subprocess.CalledProcessError as exc:
        fail(f"ray drain-node failed with exit status {exc.returncode}", EXIT_FAILED)
    log(
        f"drained node {trials.node_id or node_id or '(this node)'} with reason PREEMPTION; "
        f"{notice.seconds_left()} s left before EC2 acts"
    )
