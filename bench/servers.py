"""Real tracking servers on loopback, for the benchmarks and the tests: a throw-away
PostgreSQL cluster and an `mlflow server` on any backend store.

PostgreSQL refuses to run as root, and CI runs as root: the cluster is then created and
run as the `postgres` system user that Debian's package adds, in a folder of its own.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from urllib.parse import urlparse

import psutil

POSTGRES_USER = "postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_missing() -> str | None:
    """Why a PostgreSQL server cannot be started here, or None if it can."""
    for tool in ("initdb", "pg_ctl"):
        if _postgres_binary(tool) is None:
            return f"PostgreSQL's {tool} is not installed (Debian: apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(POSTGRES_USER)
        except KeyError:
            return "running as root and there is no 'postgres' user to run PostgreSQL as"
    return None


def _postgres_binary(tool: str) -> str | None:
    found = shutil.which(tool)
    if found:
        return found
    # Debian keeps the server's tools out of PATH, under one folder per major version.
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"), reverse=True)
    return str(versions[0]) if versions else None


@contextmanager
def running_postgres() -> Iterator[str]:
    """A fresh PostgreSQL cluster on 127.0.0.1; yields its SQLAlchemy URI (psycopg 3)."""
    missing = postgres_missing()
    if missing:
        raise RuntimeError(missing)
    folder = Path(tempfile.mkdtemp(prefix="tuner-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        account = pwd.getpwnam(POSTGRES_USER)
        os.chown(folder, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", POSTGRES_USER, "--"]
    data, log = folder / "data", folder / "server.log"
    port = free_port()
    subprocess.run(
        [*as_user, str(_postgres_binary("initdb")), "-D", str(data), "-U", POSTGRES_USER,
         "--auth=trust", "--no-sync", "-E", "UTF8"],
        check=True, capture_output=True,
    )  # fmt: skip
    pg_ctl = str(_postgres_binary("pg_ctl"))
    # fsync off: a throw-away cluster; a production server keeps it on (docs/performance.md).
    options = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=200"
    subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "start"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    try:
        yield f"postgresql+psycopg://{POSTGRES_USER}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True, timeout=60,
        )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


def new_database(postgres_uri: str, name: str) -> str:
    """A new, empty database in the cluster at `postgres_uri`; its SQLAlchemy URI. Each
    tracking server gets its own, as each deployment would."""
    import psycopg

    server = postgres_uri.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return postgres_uri.rsplit("/", 1)[0] + f"/{name}"


# The gunicorn options of the head node's MLflow unit (infra/scripts/bootstrap-head.sh;
# tests/test_infra.py checks that they are the same): threads, a timeout long enough for
# a model uploaded through the artifact proxy, and tuner's configuration, which writes a
# trial's requests through tuner.cluster.mlflow_fast_writes. Without that configuration,
# MLflow's own store: the benchmarks' comparator.
MLFLOW_GUNICORN_OPTS = "--worker-class gthread --threads 4 --timeout 600"
HEAD_GUNICORN_OPTS = f"{MLFLOW_GUNICORN_OPTS} --config python:tuner.cluster.mlflow_gunicorn"
# The head's environment for it: MLflow's job runner off. On by default, it starts 8 more
# processes for MLflow's GenAI jobs, which took 1.9 GiB and 15 s of CPU at each start on
# the 2-core machine (docs/performance.md).
HEAD_MLFLOW_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@contextmanager
def running_mlflow_server(
    root: Path,
    artifacts_destination: str,
    env: dict[str, str] | None = None,
    backend_store_uri: str | None = None,
    workers: int = 1,
    access_log: bool = False,
    app_name: str | None = None,
    gunicorn: bool = False,
    fast_writes: bool = True,
) -> Iterator[str]:
    """A real MLflow tracking server on 127.0.0.1 with proxied artifacts; SQLite in
    `root` unless another backend store is given. With `access_log`, root/server.log
    has a line per request; with `gunicorn`, MLflow's Flask app runs under gunicorn
    with the head node's options instead of its FastAPI app under uvicorn (without
    tuner's `fast_writes`, MLflow's own store)."""
    gunicorn_opts = HEAD_GUNICORN_OPTS if fast_writes else MLFLOW_GUNICORN_OPTS
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    backend = backend_store_uri or f"sqlite:///{root / 'mlflow.db'}"
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1",
            "--port", str(port),
            "--workers", str(workers),
            "--backend-store-uri", backend,
            "--artifacts-destination", artifacts_destination,
            *(["--uvicorn-opts", "--access-log --log-level info"] if access_log else []),
            *(["--app-name", app_name] if app_name else []),
            *(["--gunicorn-opts", gunicorn_opts] if gunicorn else []),
        ],
        cwd=root,
        # gunicorn's control socket in this server's folder, not the user's home, where
        # a second gunicorn of the same user would take it over.
        env={**os.environ, **HEAD_MLFLOW_ENV, "XDG_RUNTIME_DIR": str(root), **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mlflow server did not start:\n{(root / 'server.log').read_text()}"
                    ) from None
                time.sleep(0.5)
        yield uri
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def http_server_name(gunicorn: bool, fast_writes: bool = True) -> str:
    """What serves MLflow in `running_mlflow_server`, as a benchmark's result names it."""
    if not gunicorn:
        return "uvicorn (FastAPI app)"
    return f"gunicorn {HEAD_GUNICORN_OPTS if fast_writes else MLFLOW_GUNICORN_OPTS} (Flask app)"


@contextmanager
def tracking_server(
    store: str, workers: int, gunicorn: bool = False, fast_writes: bool = True
) -> Iterator[tuple[str, str | None]]:
    """`mlflow server` on loopback over a throw-away PostgreSQL (`store` "postgresql") or
    a SQLite file (anything else), in a temporary folder, under uvicorn or `gunicorn`
    (with tuner's `fast_writes` or not); yields the server's URI and the PostgreSQL URI
    (None on SQLite)."""
    backend = running_postgres() if store == "postgresql" else nullcontext(None)
    with (
        backend as backend_uri,
        tempfile.TemporaryDirectory(prefix="bench-mlflow-") as root,
        running_mlflow_server(
            Path(root),
            f"{root}/artifacts",
            backend_store_uri=backend_uri,
            workers=workers,
            gunicorn=gunicorn,
            fast_writes=fast_writes,
        ) as uri,
    ):
        yield uri, backend_uri


S3_TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}


@contextmanager
def running_s3(bucket: str) -> Iterator[str]:
    """moto's S3 server in its own process on 127.0.0.1, with one bucket; yields its
    endpoint. This process's environment points at it meanwhile (Ray started inside
    inherits it), as a user's AWS_ENDPOINT_URL would."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    saved = {name: os.environ.get(name) for name in [*S3_TEST_CREDENTIALS, "AWS_ENDPOINT_URL"]}
    os.environ.update({**S3_TEST_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint})
    try:
        import boto3

        deadline = time.monotonic() + 60
        while True:
            try:
                boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
                break
            except Exception:  # not listening yet
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield endpoint
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        process.terminate()
        process.wait(timeout=20)


def store_roots(uri: str, backend_uri: str | None) -> dict[str, psutil.Process]:
    """The processes a tracking server's CPU is counted from: the `mlflow server` and, on
    PostgreSQL, the postmaster; each with its children."""
    roots = {"server": _listening(str(urlparse(uri).port), "mlflow")}
    if backend_uri is not None:
        roots["database"] = _listening(str(urlparse(backend_uri).port), "postgres")
    return roots


def _listening(port: str, name: str) -> psutil.Process:
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if name in line and port in line.split():
            return process
    raise RuntimeError(f"no {name} process started with port {port}")


def tree_cpu_s(root: psutil.Process) -> float:
    """CPU seconds so far of a process, the children it has reaped (PostgreSQL's closed
    connections) and its live descendants (gunicorn's workers)."""
    total = 0.0
    for process in (root, *root.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
        if process is root:
            total += times.children_user + times.children_system
    return total
