"""Real parts for the tests: embedded Ray, a real `mlflow server`, the real CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from bench.common import python_path
from bench.servers import (
    free_port,
    new_database,
    postgres_missing,
    running_mlflow_server,
    running_postgres,
)

if TYPE_CHECKING:  # importing Ray takes a second, which the fast tests do without
    from ray.tune import Result, ResultGrid

REPO = Path(__file__).resolve().parent.parent
SEARCH_SPACES = REPO / "search_spaces"


# Tests that start a real part (Ray, an mlflow server, a benchmark's systems, a sweep) take
# seconds each; `python -m pytest -m "not slow"` leaves them out for a fast loop.
SLOW_MARKERS = frozenset({"ray", "e2e", "bench", "server"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_MARKERS & {marker.name for marker in item.iter_markers()}:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _signal_handlers_kept() -> Iterator[None]:
    """A test leaves SIGINT and SIGTERM handled as it found them. Ray Tune's fit() in the
    test process installs its own SIGINT handler and leaves it there: a later test that
    holds or sends a Ctrl-C met Tune's handler, not what a fresh `tuner` process has."""
    found = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in found.items():
        if handler is not None and signal.getsignal(signum) is not handler:
            signal.signal(signum, handler)


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    """One embedded Ray per test module: starting Ray costs seconds on 2 cores."""
    import ray

    # Workers import test trainables by module name, like user code from the cwd.
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": python_path()}},
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def _mlflow_server_and_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("mlflow-server")
    with running_mlflow_server(root, str(root / "artifacts"), access_log=True) as uri:
        yield uri, root / "server.log"


@pytest.fixture(scope="session")
def mlflow_server(_mlflow_server_and_log: tuple[str, Path]) -> str:
    """One MLflow server for the session, artifacts in a local folder."""
    return _mlflow_server_and_log[0]


@pytest.fixture(scope="session")
def mlflow_server_log(_mlflow_server_and_log: tuple[str, Path]) -> Path:
    """The session server's access log: a line per request it served."""
    return _mlflow_server_and_log[1]


@pytest.fixture(scope="session")
def postgres_uri() -> Iterator[str]:
    """A throw-away PostgreSQL cluster, the production tracking store's database."""
    missing = postgres_missing()
    if missing:
        pytest.skip(missing)
    with running_postgres() as uri:
        yield uri


@pytest.fixture(scope="session")
def mlflow_server_on_postgres(
    postgres_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An MLflow server on PostgreSQL, as the infra's head node runs it: under gunicorn
    with the head's options, tuner's fast writes included."""
    root = tmp_path_factory.mktemp("mlflow-server-pg")
    database = new_database(postgres_uri, "e2e")
    with running_mlflow_server(
        root, str(root / "artifacts"), backend_store_uri=database, workers=2, gunicorn=True
    ) as uri:
        yield uri


# The bucket the s3_endpoint fixture creates, for the user's data.
S3_BUCKET = "user-data"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 in server mode on 127.0.0.1: pyarrow talks to it over real HTTP."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",
                                            "AWS_SECRET_ACCESS_KEY", "AWS_REGION")}  # fmt: skip
    os.environ.update(
        AWS_ENDPOINT_URL_S3=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
    )
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket=S3_BUCKET
        )
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a user's shell: tuner importable, no tracking URI inherited."""
    env = {**os.environ, "PYTHONPATH": python_path(), **(extra or {})}
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


SLOW_TRAINABLE = textwrap.dedent(
    """
    import time
    from pathlib import Path

    from ray import tune


    def fit(config):
        for epoch in range(1, config["epochs"] + 1):
            Path(config["started"]).touch()  # tells the test a trial is mid-run
            time.sleep(0.2)
            tune.report({"epoch": epoch, "loss": 1.0 / epoch})
    """
)


def write_slow_sweep(cwd: Path, name: str, *, num_samples: int = 2, epochs: int = 10) -> Path:
    """`cwd/sweep.yaml`, a sweep whose trials take 0.2 s an epoch, for a test to stop
    mid-trial; returns the file a trial touches once it runs (see run_and_signal)."""
    (cwd / "slow.py").write_text(SLOW_TRAINABLE)
    started = cwd / "started"
    spec = {
        "name": name,
        "trainable": "slow:fit",
        "metric": "loss",
        "mode": "min",
        "num_samples": num_samples,
        "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "config": {"started": str(started), "epochs": epochs},
    }
    (cwd / "sweep.yaml").write_text(yaml.safe_dump(spec))
    return started


def run_and_signal(
    cwd: Path, started: Path, signum: int, *args: str, again_after: float | None = None
) -> subprocess.CompletedProcess[str]:
    """`tuner ARGS...` in its own process, sent `signum` a second after a trial first
    touched `started` (a few epochs in), as a user's Ctrl-C or a scheduler's stop;
    `again_after` seconds later once more, as an impatient user's second Ctrl-C."""
    process = subprocess.Popen(
        [*TUNER, *args],
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    if not started.exists():  # a signal now would not land mid-trial: say why instead
        exited = process.poll()
        process.terminate()  # tuner shuts its Ray down on SIGTERM
        try:
            _, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate(timeout=60)
        how = "was still running after 120 s" if exited is None else f"exited {exited}"
        pytest.fail(
            f"no trial touched {started.name} and `tuner {' '.join(args)}` {how}; "
            f"no signal sent. Its stderr ends:\n{stderr[-3000:]}"
        )
    time.sleep(1.0)
    process.send_signal(signum)
    if again_after is not None:
        time.sleep(again_after)
        process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def each_result(results: ResultGrid) -> list[Result]:
    """Every trial's result, in order. A ResultGrid has no __iter__: Python iterates it
    through __getitem__, the old sequence protocol, which mypy does not follow."""
    return [results[index] for index in range(len(results))]


def each_metrics(results: ResultGrid) -> list[dict[str, Any]]:
    """Every trial's last reported metrics, in order; each trial must have reported."""
    reported = []
    for result in each_result(results):
        assert result.metrics is not None, f"the trial in {result.path} reported nothing"
        reported.append(result.metrics)
    return reported
