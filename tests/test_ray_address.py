"""`tuner run --address`: a sweep on an existing, token-protected Ray cluster."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from bench.servers import free_port
from tests.conftest import run_cli

pytestmark = pytest.mark.e2e

# Ray rewrites 127.0.0.1 to the machine's outbound interface address when it connects;
# on Linux this switch (meant for laptops) keeps every Ray process on loopback.
LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}

USER_CODE = textwrap.dedent(
    """
    from pathlib import Path

    import ray
    from ray import tune


    def fit(config: dict) -> None:
        Path(config["gcs_file"]).write_text(ray.get_runtime_context().gcs_address)
        tune.report({"epoch": 1, "score": config["x"]})
    """
)


@dataclass
class Head:
    address: str
    token: str


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Head]:
    """A real Ray head started with `ray start`, token auth on, bound to 127.0.0.1."""
    token = secrets.token_hex(16)
    port = free_port()
    env = {**os.environ, **LOOPBACK_ONLY, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    temp_dir = tmp_path_factory.mktemp("ray-head")
    ray = [sys.executable, "-m", "ray.scripts.scripts"]
    subprocess.run(
        [*ray, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
         f"--temp-dir={temp_dir}"],
        env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    try:
        yield Head(address=f"127.0.0.1:{port}", token=token)
    finally:
        subprocess.run([*ray, "stop", "--force"], env=env, capture_output=True, timeout=120)


def write_sweep(tmp_path: Path) -> Path:
    (tmp_path / "on_cluster.py").write_text(USER_CODE)
    spec = {
        "name": "on-cluster",
        "trainable": "on_cluster:fit",
        "metric": "score",
        "mode": "max",
        "searcher": {"kind": "grid"},
        "params": {"x": {"type": "grid", "values": [1, 2, 3]}},
        "config": {"gcs_file": str(tmp_path / "gcs_address")},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_sweep_runs_on_the_cluster_with_the_token(ray_head: Head, tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path)
    env = {**LOOPBACK_ONLY, "RAY_AUTH_TOKEN": ray_head.token}
    out = run_cli("run", str(sweep), "--address", ray_head.address, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    # The trials ran in the cluster's workers, not in a Ray of the CLI's own.
    assert (tmp_path / "gcs_address").read_text() == ray_head.address
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("on-cluster")
    assert experiment is not None
    trials = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`tuner.role` = 'trial'"
    )
    assert sorted(r.data.metrics["score"] for r in trials) == [1.0, 2.0, 3.0]


def test_a_wrong_token_is_one_clear_error(ray_head: Head, tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path)
    env = {**LOOPBACK_ONLY, "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    out = run_cli("run", str(sweep), "--address", ray_head.address, cwd=tmp_path, env=env)
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: cannot join the Ray cluster at {ray_head.address}: Failed to connect to Ray "
        f"cluster at {ray_head.address} (is RAY_AUTH_TOKEN the cluster's token? "
        "it rejects any other)"
    ]
    assert not (tmp_path / "mlflow.db").exists(), "nothing is tracked for a sweep that never ran"


def test_an_address_nobody_answers_fails_in_seconds(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path)
    dead = f"127.0.0.1:{free_port()}"
    out = run_cli("run", str(sweep), "--address", dead, cwd=tmp_path, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"error: cannot reach the Ray cluster at {dead}: [Errno 111] Connection refused"
    ]
