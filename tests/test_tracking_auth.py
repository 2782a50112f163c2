"""tuner against an MLflow server that checks who you are (`mlflow server --app-name
basic-auth`, as the infra's head node runs it): credentials come from the environment,
a refused login is one line and exit 2 before anything starts, and the password is
written nowhere: not in MLflow, not in the sweep's storage, not in any log."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient
from mlflow.server import get_app_client

from bench.servers import running_mlflow_server
from tests.conftest import run_cli
from tests.test_status_rows import a_job
from tuner.cli.job_rows import job_counts, json_row

pytestmark = pytest.mark.e2e

USER = "sweeper"
SWEEP: dict[str, Any] = {
    "name": "auth-sweep",
    "trainable": "tests.trainables:report_twice",
    "metric": "score",
    "mode": "max",
    "num_samples": 2,
    "searcher": {"kind": "random", "seed": 0},
    "max_concurrent_trials": 2,
    "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
}


@dataclass(frozen=True)
class AuthServer:
    uri: str
    admin: dict[str, str]  # MLFLOW_TRACKING_USERNAME / _PASSWORD of the admin
    user: dict[str, str]  # ... of the sweeps' identity, a plain user
    password: str  # the user's


def login(username: str, password: str) -> dict[str, str]:
    return {"MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": password}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    root = tmp_path_factory.mktemp("mlflow-auth")
    admin_password = secrets.token_urlsafe(16)
    config = root / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{root / 'users.db'}\n"
        "admin_username = admin\n"
        f"admin_password = {admin_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
    }
    with running_mlflow_server(
        root, str(root / "artifacts"), env=env, app_name="basic-auth"
    ) as uri:
        admin = login("admin", admin_password)
        password = secrets.token_urlsafe(16)
        with logged_in(admin):
            get_app_client("basic-auth", tracking_uri=uri).create_user(USER, password)
        yield AuthServer(uri, admin, login(USER, password), password)


@contextmanager
def logged_in(credentials: dict[str, str]) -> Iterator[None]:
    """MLflow's clients in this process read their login from the environment; the
    `tuner` commands the tests start must not inherit it."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in credentials.items():
            patch.setenv(key, value)
        yield


def write_sweep(folder: Path) -> Path:
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(SWEEP))
    return path


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_a_sweep_runs_with_credentials_from_the_environment_and_the_password_stays_secret(
    server: AuthServer, tmp_path: Path
) -> None:
    # Ray's session folder (logs included) inside this test's, to be searched afterwards;
    # a short path, since Ray's sockets live under it.
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    try:
        done = run_cli(
            "run", str(write_sweep(tmp_path)), "--tracking-uri", server.uri,
            "--storage", str(tmp_path / "runs"),
            cwd=tmp_path, env={**server.user, "RAY_TMPDIR": str(ray_tmp)},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "best trial" in done.stdout

        best = run_cli("best", "auth-sweep", "--tracking-uri", server.uri, "--json",
                       cwd=tmp_path, env=server.user)  # fmt: skip
        assert best.returncode == 0, best.stderr

        with logged_in(server.admin):
            client = MlflowClient(server.uri)
            experiment = client.get_experiment_by_name("auth-sweep")
            assert experiment is not None
            runs = client.search_runs([experiment.experiment_id])
            assert len(runs) == 1 + SWEEP["num_samples"]
            # The sweeps' identity created the experiment, so it may manage it.
            permission = get_app_client("basic-auth", tracking_uri=server.uri)
            owner = permission.get_user_permission(USER, "experiment", experiment.experiment_id)
            assert owner.permission == "MANAGE"

            # Nowhere in plain text: the command's output, MLflow's runs and artifacts,
            # the sweep's storage, Ray's session folder and logs.
            seen = [done.stdout, done.stderr, best.stdout, best.stderr]
            for run in runs:
                seen += [str(run.data.params), str(run.data.tags), str(run.data.metrics)]
                local = tmp_path / "artifacts" / run.info.run_id
                local.mkdir(parents=True)
                client.download_artifacts(run.info.run_id, "", str(local))
        assert list(ray_tmp.rglob("session_*/logs")), "Ray kept its session and logs here"
        for folder in (tmp_path, ray_tmp):
            for path in folder.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    seen.append(path.read_bytes().decode("utf-8", "replace"))
        assert not [text for text in seen if server.password in text]
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.parametrize("credentials", ["none", "wrong password"])
def test_a_refused_login_is_one_line_and_exit_2_before_anything_starts(
    server: AuthServer, tmp_path: Path, credentials: str
) -> None:
    env = {} if credentials == "none" else login(USER, "not-" + server.password)
    spec = write_sweep(tmp_path)
    for command in (
        ["run", str(spec), "--tracking-uri", server.uri, "--storage", str(tmp_path / "runs")],
        ["best", "auth-sweep", "--tracking-uri", server.uri],
    ):
        done = run_cli(*command, cwd=tmp_path, env=env)
        assert done.returncode == 2, done.stderr
        line = one_line_error(done.stderr)
        assert server.uri in line
        assert "MLFLOW_TRACKING_USERNAME" in line
        assert server.password not in done.stdout + done.stderr
    assert not (tmp_path / "runs").exists(), "nothing started"


def test_a_refused_login_is_the_jobs_problem_in_status_json(
    server: AuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tuner status --json` left out why a job had no trial counts, which its text line
    said: a script saw a job without counts and no reason."""
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    job = a_job(server.uri)
    counts, problem = job_counts(job, None)
    assert counts is None
    assert problem.startswith(f"MLflow tracking server {server.uri} asks for a login")
    row = json_row(job, counts, problem)
    assert row["problem"] == problem
    assert row["status"] == "RUNNING"
