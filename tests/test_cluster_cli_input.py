"""`tuner status/logs/stop` given odd input: each answer is one line, in bounded time.

Without a cluster: addresses nobody answers. A user's shell holds a token but does
not set RAY_AUTH_MODE (Ray's own helper turns token auth on from the token).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.servers import free_port
from tests.conftest import TUNER, cli_env

pytestmark = pytest.mark.e2e

TOKEN = "0123456789abcdef" * 2


def users_shell(**extra: str) -> dict[str, str]:
    env = cli_env({"RAY_AUTH_TOKEN": TOKEN, **extra})
    env.pop("RAY_AUTH_MODE", None)  # a user's shell: Ray decides from the token
    env.pop("RAY_ADDRESS", None)
    return env


def tuner(*args: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TUNER, *args], cwd=cwd, env=users_shell(**extra),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_status_of_an_unreachable_cluster_is_one_line_without_rays_auth_note(
    tmp_path: Path,
) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    done = tuner("status", "--address", address, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: cannot reach the Ray Jobs API at {address}: "
        f"Failed to connect to Ray at address: {address}."
    ]


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("http://[::1", "error: address 'http://[::1': not a URL (Invalid IPv6 URL)"),
        (
            "http://127.0.0.1:99999",
            "error: address 'http://127.0.0.1:99999': not a URL (Port out of range 0-65535)",
        ),
        (
            "127.0.0.1:8265",
            "error: address '127.0.0.1:8265': the Ray Jobs API is an http(s):// URL "
            "(http://HEAD:8265)",
        ),
        (
            "http://bob:pw123@127.0.0.1:8265",
            "error: address 'http://***@127.0.0.1:8265': the Ray Jobs API takes no login in "
            "its URL; the cluster's token goes in RAY_AUTH_TOKEN",
        ),
    ],
)
def test_an_odd_address_is_one_line_without_its_password(
    tmp_path: Path, address: str, expected: str
) -> None:
    """Before: "[::1" was a traceback; a login in the URL was echoed in every error line
    and sent in place of the token, so the head said the token was wrong."""
    for command in ("status", "logs", "stop"):
        args = [command] if command == "status" else [command, "some-sweep"]
        done = tuner(*args, "--address", address, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip().splitlines() == [expected]
        assert "pw123" not in done.stdout + done.stderr


def test_submit_refuses_a_password_in_the_tracking_uri_before_anything_else(
    tmp_path: Path,
) -> None:
    """Before: it went into the job's metadata and entrypoint, readable in the dashboard."""
    (tmp_path / "sweep.yaml").write_text(
        "name: pw-in-uri\ntrainable: builtin:classifier\nmetric: val_accuracy\nmode: max\n"
        "params:\n  lr: {type: float, low: 0.001, high: 0.1}\n"
    )
    done = tuner(
        "submit", "sweep.yaml", "--storage", "s3://bucket/sweeps",
        "--tracking-uri", "http://bob:pw123@127.0.0.1:5000",
        "--address", f"http://127.0.0.1:{free_port()}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: --tracking-uri http://bob:***@127.0.0.1:5000: put the login in "
        "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD on the cluster's nodes, "
        "not in the URI (it would be stored with the job)"
    ]


def test_resume_with_a_broken_jobs_address_is_one_line(tmp_path: Path) -> None:
    """Before: `tuner resume` parsed the address to choose the cluster path and raised
    urllib's "Invalid IPv6 URL" traceback."""
    done = tuner("resume", "some-sweep", "--address", "http://[::1", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: address 'http://[::1': not a URL (Invalid IPv6 URL)"
    ]


def test_submit_refuses_a_user_name_in_the_tracking_uri_as_the_cluster_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: a login without a password passed `tuner submit` and the job's own
    preflight refused it on the cluster; one rule (has_login) serves both now."""
    from tuner.cli import remote
    from tuner.spec.secrets import has_login

    assert has_login("http://bob@h:5000") and has_login("http://bob:pw@h:5000")
    assert not has_login("http://h:5000") and not has_login("sqlite:///mlflow.db")

    def refused(message: str, code: int) -> None:
        raise ValueError(message, code)

    monkeypatch.setattr(remote, "fail", refused)
    with pytest.raises(ValueError) as raised:
        remote.cluster_locations("s3://bucket/sweeps", "http://bob@127.0.0.1:5000")
    message, code = raised.value.args
    assert code == 2
    assert message.startswith("--tracking-uri http://bob@127.0.0.1:5000: put the login in ")
