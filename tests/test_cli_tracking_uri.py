"""What a careless or wrong tracking URI gets from the commands that read or write
MLflow: one line, in seconds, no password printed, nothing created where nothing was."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from bench.servers import free_port
from tests.conftest import S3_BUCKET, run_cli
from tuner.cli.summary import browse_line

SPEC = {
    "name": "uri-checks",
    "trainable": "builtin:classifier",
    "metric": "val_accuracy",
    "mode": "max",
    "num_samples": 1,
    "params": {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}},
}


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("command", ["run", "best"])
def test_a_password_in_the_uri_is_refused_and_never_printed(tmp_path: Path, command: str) -> None:
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(SPEC))
    uri = f"http://sweeper:hunter2-s3cret@127.0.0.1:{free_port()}"
    target = "sweep.yaml" if command == "run" else "uri-checks"
    done = run_cli(command, target, "--tracking-uri", uri, cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert "MLFLOW_TRACKING_USERNAME" in line and "sweeper:***@127.0.0.1" in line
    assert "hunter2" not in done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]


def test_best_on_a_server_that_is_down_says_so_in_seconds(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    done = run_cli("best", "uri-checks", "--tracking-uri", dead, cwd=tmp_path, timeout=60)
    assert done.returncode == 1
    assert one_line(done.stderr) == (
        f"error: MLflow tracking server {dead} unreachable: [Errno 111] Connection refused"
    )


@pytest.mark.parametrize("where", ["missing folder", "missing file"])
def test_best_creates_no_store_where_there_was_none(tmp_path: Path, where: str) -> None:
    folder = tmp_path / "nowhere" if where == "missing folder" else tmp_path
    database = folder / "mlflow.db"
    done = run_cli("best", "uri-checks", "--tracking-uri", f"sqlite:///{database}", cwd=tmp_path)
    assert done.returncode == 1
    assert str(folder if where == "missing folder" else database) in one_line(done.stderr)
    assert list(tmp_path.iterdir()) == [], "no folder, no database"


def test_storage_that_cannot_be_written_is_one_line_before_anything_starts(
    tmp_path: Path,
) -> None:
    """A read-only folder (a read-only mount refuses root too; chmod would not)."""
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(SPEC))
    done = run_cli("run", "sweep.yaml", "--storage", "/proc/tuner-runs", cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line.startswith("error: --storage: storage /proc/tuner-runs: cannot write there:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]


@pytest.mark.parametrize("command", ["run", "best", "report"])
@pytest.mark.parametrize("uri", ["file:///{tmp}/mlruns", "{tmp}/mlruns"])
def test_mlflows_closed_file_store_is_one_line_not_a_traceback(
    tmp_path: Path, command: str, uri: str
) -> None:
    """MLflow 3 refuses its file store (a `file://` URI, or a bare path) unless opted in:
    the user saw a page of traceback, after Ray had started."""
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(SPEC))
    uri = uri.format(tmp=tmp_path)
    target = "sweep.yaml" if command == "run" else "uri-checks"
    done = run_cli(command, target, "--tracking-uri", uri, cwd=tmp_path, timeout=60)
    assert done.returncode == 1
    assert one_line(done.stderr) == (
        f"error: tracking URI {uri}: MLflow 3 keeps its file store for old runs "
        "(MLFLOW_ALLOW_FILE_STORE=true opens it); use sqlite:///PATH/mlflow.db or a server"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]


def test_the_summarys_browse_command_pastes_into_a_shell_whatever_the_path() -> None:
    line = browse_line("sqlite:////home/me/my sweeps/mlflow.db", "1", "abc")
    assert shlex.split(line) == [
        "mlflow", "ui", "--backend-store-uri", "sqlite:////home/me/my sweeps/mlflow.db"
    ]  # fmt: skip
    assert browse_line("sqlite:///mlflow.db", "1", "abc").endswith(" sqlite:///mlflow.db")
    assert (
        browse_line("http://head:5000", "1", "abc") == "http://head:5000/#/experiments/1/runs/abc"
    )


@pytest.mark.parametrize("where", ["no such bucket", "no endpoint answering"])
def test_s3_storage_that_cannot_be_written_is_one_line_before_anything_starts(
    tmp_path: Path, s3_endpoint: str, where: str
) -> None:
    """pyarrow's traceback came out of `tuner run` after the tracking store was made,
    from the sweep file's first write to the bucket."""
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(SPEC))
    storage, env = "s3://no-such-bucket/runs", {}
    if where == "no endpoint answering":
        storage, env = (
            f"s3://{S3_BUCKET}/runs",
            {"AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_port()}"},
        )
    done = run_cli("run", "sweep.yaml", "--storage", storage, cwd=tmp_path, timeout=60, env=env)
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line.startswith(f"error: --storage: storage {storage}: cannot write there: ")
    if where == "no such bucket":
        assert line.endswith("no bucket 'no-such-bucket' there (tuner does not create buckets)")
    else:
        assert "Could not connect" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]
