"""Real parts for the tests: embedded Ray, a real `mlflow server`, the real CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SEARCH_SPACES = REPO / "search_spaces"


# Tests that start a real part (Ray, an mlflow server, a benchmark's systems, a sweep) take
# seconds each; `python -m pytest -m "not slow"` leaves them out for a fast loop.
SLOW_MARKERS = frozenset({"ray", "e2e", "bench"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_MARKERS & {marker.name for marker in item.iter_markers()}:
            item.add_marker(pytest.mark.slow)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    """One embedded Ray per test module: starting Ray costs seconds on 2 cores."""
    import ray

    # Workers import test trainables by module name, like user code from the cwd.
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}},
    )
    yield
    ray.shutdown()


@contextmanager
def running_mlflow_server(
    root: Path, artifacts_destination: str, env: dict[str, str] | None = None
) -> Iterator[str]:
    """A real MLflow tracking server on 127.0.0.1: SQLite backend, proxied artifacts."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1",
            "--port", str(port),
            "--workers", "1",
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination", artifacts_destination,
        ],
        cwd=root,
        env={**os.environ, **(env or {})},
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


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One MLflow server for the session, artifacts in a local folder."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with running_mlflow_server(root, str(root / "artifacts")) as uri:
        yield uri


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a user's shell: tuner importable, no tracking URI inherited."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **(extra or {})}
    env.pop("MLFLOW_TRACKING_URI", None)  # MLflow exports it from set_tracking_uri()
    return env


TUNER = [sys.executable, "-m", "tuner.cli"]


def run_cli(
    *args: str, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `tuner` command the way a user does, in its own process."""
    return subprocess.run(
        [*TUNER, *args],
        cwd=cwd,
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
