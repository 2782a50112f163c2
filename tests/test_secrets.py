"""Secrets in a sweep's config: the trials get them, nothing tuner writes holds them.

A sweep whose config carries an API token, a database password and an `${env:NAME}`
runs for real (the CLI, embedded Ray, MLflow on SQLite, a local storage folder); then
MLflow's store and artifacts, the storage (Ray's params.json, result.json, pickles),
Ray's temp folder and the command's output are searched byte for byte for each secret.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import run_cli
from tests.trainables import config_digest
from tuner.engine.loading import load_spec
from tuner.spec import SpecError, parse_spec
from tuner.spec.secrets import (
    WITHHELD,
    MissingEnvironment,
    looks_secret,
    resolved,
    secrets_back,
    withhold,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "name",
    [
        "api_token",
        "db_password",
        "aws_secret_access_key",
        "AWS_SECRET_ACCESS_KEY",
        "apiKey",
        "hf_token",
        "client_secret_id",
        "credentials",
        "wandb_api_key",
        "passwd",
        "token",
    ],
)
def test_names_that_say_secret(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize(
    "name", ["lr", "key_size", "token_dim", "max_tokens", "monkey", "hidden", "keys"]
)
def test_knob_names_are_not_secrets(name: str) -> None:
    assert not looks_secret(name)


def test_a_sweep_adds_its_own_secret_names() -> None:
    assert not looks_secret("webhook_url")
    assert looks_secret("webhook_url", ["webhook_*"])
    assert looks_secret("Sentry_DSN", ["*_dsn"])


def test_withheld_values_are_replaced_at_any_depth_and_env_names_stay_visible() -> None:
    config = {
        "epochs": 3,
        "api_token": "tok-1",
        "db": {"host": "db.local", "password": "pw-1"},
        "hooks": [{"url": "u", "secret": 7}],
        "hf_token": "${env:HF_TOKEN}",
    }
    shown, withheld = withhold(config)
    assert shown == {
        "epochs": 3,
        "api_token": WITHHELD,
        "db": {"host": "db.local", "password": WITHHELD},
        "hooks": [{"url": "u", "secret": WITHHELD}],
        "hf_token": "${env:HF_TOKEN}",
    }
    assert withheld == {k: config[k] for k in ("api_token", "db", "hooks")}


def test_a_url_with_a_written_password_is_withheld_whatever_its_name() -> None:
    """`db_url: postgresql://app:hunter2@db/x` went to MLflow's params and the stored
    sweep file in plain text: its name says nothing, its value says it all."""
    config = {
        "db_url": "postgresql://app:hunter2@db/x",
        "hooks": ["https://h/x?token=t0k", "https://h/y"],
        "from_env": "postgresql://app:${env:PW}@db/x",
        "plain": "http://localhost:5000/path",
    }
    shown, withheld = withhold(config)
    assert shown == {**config, "db_url": WITHHELD, "hooks": [WITHHELD, "https://h/y"]}
    assert withheld == {"db_url": config["db_url"], "hooks": config["hooks"]}


def test_env_references_resolve_in_strings_and_name_what_is_missing() -> None:
    env = {"USER_": "ada", "PW": "s3cret"}
    value = {"dsn": "postgresql://${env:USER_}:${env:PW}@db/x", "n": 1}
    assert resolved(value, environ=env) == {"dsn": "postgresql://ada:s3cret@db/x", "n": 1}
    with pytest.raises(MissingEnvironment, match=r"config.dsn: environment variable PW"):
        resolved(value, environ={"USER_": "ada"})


def _sweep(**extra: object) -> dict[str, object]:
    return {
        "name": "s",
        "trainable": "tests.trainables:secrets_received",
        "metric": "received",
        "mode": "max",
        "params": {"x": {"type": "float", "low": 0, "high": 1}},
        **extra,
    }


def test_a_searched_secret_is_refused() -> None:
    raw = _sweep(params={"api_key": {"type": "categorical", "choices": ["a", "b"]}})
    with pytest.raises(SpecError) as caught:
        parse_spec(raw, "s.yaml")
    assert caught.value.key == "params.api_key"
    assert "secret" in caught.value.problem


def test_a_malformed_reference_is_refused() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(_sweep(config={"root": "${HOME}/data"}), "s.yaml")
    assert (caught.value.key, "${HOME}") == ("config.root", caught.value.problem.split()[0])


def test_resume_takes_the_secrets_from_the_sweep_file_only() -> None:
    stored, _ = withhold({"api_token": "t", "epochs": 2})
    with pytest.raises(SpecError, match=r"resume it with its sweep file"):
        secrets_back("s", stored, None)
    with pytest.raises(SpecError, match=r"not a secret in the sweep file given"):
        secrets_back("s", stored, withhold({"api_token": "${env:T}"})[1])
    assert secrets_back("s", stored, withhold({"api_token": "t2"})[1]) == {"api_token": "t2"}
    assert secrets_back("s", {"epochs": 2}, None) == {}


def test_resume_finds_a_secret_withheld_inside_a_list_or_under_a_dotted_key() -> None:
    """A secret inside a list was withheld but not looked for on resume: `tuner resume
    NAME` ran every trial with '<secret: not stored>' as its password; a top-level key
    with a dot (`db.password`) was refused even with its sweep file."""
    config = {"dbs": [{"host": "h", "password": "pw"}], "db.password": "pw2", "epochs": 2}
    stored, from_file = withhold(config)
    assert stored["dbs"] == [{"host": "h", "password": WITHHELD}]
    with pytest.raises(SpecError, match=r"resume it with its sweep file") as caught:
        secrets_back("s", stored, None)
    assert caught.value.key == "config.dbs[0].password"
    assert "config.db.password" in caught.value.problem
    assert secrets_back("s", stored, from_file) == {
        "dbs": [{"host": "h", "password": "pw"}],
        "db.password": "pw2",
    }


def test_submit_refuses_a_literal_secret_before_reaching_a_cluster(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_sweep(config={"db_password": "pw-x"})))
    done = run_cli("submit", str(path), "--address", "http://127.0.0.1:9", cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "config.db_password" in lines[0] and "${env:NAME}" in lines[0]
    assert "pw-x" not in done.stderr + done.stdout


# --- a real sweep ----------------------------------------------------------------------


def _secret(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}"


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """Ray's socket paths must stay under ~100 characters: a short temp folder."""
    folder = Path(tempfile.mkdtemp(prefix="ts-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _files_holding(root: Path, secrets: list[str]) -> list[str]:
    found = []
    needles = [secret.encode() for secret in secrets]
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                data = path.read_bytes()
            except OSError:
                continue  # a socket or a file Ray removed meanwhile
            found += [f"{path}: {n.decode()[:8]}..." for n in needles if n in data]
    return found


@pytest.mark.e2e
@pytest.mark.parametrize("trainable", ["secrets_received", "SecretsReceived"])
def test_a_sweep_with_secrets_runs_and_writes_none_of_them(trainable: str, short_tmp: Path) -> None:
    token, password, from_env, aws = (_secret(s) for s in ("tok", "pw", "env", "aws"))
    config = {
        "api_token": token,
        "db": {"host": "db.internal", "password": password},
        "hf_token": "${env:TUNER_TEST_HF_TOKEN}",
    }
    received = {"api_token": token, "db": config["db"], "hf_token": from_env}
    sweep = _sweep(
        trainable=f"tests.trainables:{trainable}",
        num_samples=2,
        stop={"training_iteration": 1},
        config={**config, "expect": [[k, config_digest(v)] for k, v in received.items()]},
    )
    work = short_tmp / "w"
    work.mkdir()
    (work / "s.yaml").write_text(yaml.safe_dump(sweep))
    tracking = f"sqlite:///{work}/mlflow.db"
    env = {
        "TUNER_TEST_HF_TOKEN": from_env,
        "AWS_SECRET_ACCESS_KEY": aws,
        "AWS_ACCESS_KEY_ID": "AKIATESTONLY",
        "RAY_TMPDIR": str(short_tmp / "ray"),
    }
    args = ["--tracking-uri", tracking, "--storage", str(work / "runs")]
    done = run_cli("run", "s.yaml", *args, cwd=work, env=env)
    assert done.returncode == 0, done.stderr

    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("s")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    trials = [run for run in runs if run.data.tags.get("tuner.role") == "trial"]
    assert [run.data.metrics["received"] for run in trials] == [1.0, 1.0]
    parent = next(run for run in runs if run.data.tags.get("tuner.role") == "sweep")
    assert parent.data.params["config.api_token"] == WITHHELD
    assert parent.data.params["config.hf_token"] == "${env:TUNER_TEST_HF_TOKEN}"

    secrets = [token, password, from_env, aws]
    leaks = _files_holding(work / "runs", secrets) + _files_holding(short_tmp / "ray", secrets)
    leaks += _files_holding(work, secrets)  # MLflow's database and artifacts live here
    leaks = [leak for leak in leaks if not leak.startswith(f"{work / 's.yaml'}:")]
    assert leaks == []
    assert not [s for s in secrets if s in done.stdout + done.stderr]
    # Each trial printed its config: the token's place shows <secret>, where Ray keeps
    # the workers' output.
    printed = [
        path
        for path in (short_tmp / "ray").rglob("worker-*.out")
        if "'api_token': '<secret>'" in path.read_text(errors="replace")
    ]
    assert printed, "no worker output holds the printed config"
    assert any((work / "runs").rglob("params.json"))  # the storage was searched, not empty
    assert any((short_tmp / "ray").rglob("*.log")) or any((short_tmp / "ray").rglob("*.out"))

    # The storage does not know the secrets, so only the sweep file can resume the sweep.
    again = run_cli("resume", "s", *args, cwd=work, env=env, timeout=120)
    assert again.returncode == 2, again.stderr
    assert "tuner resume path/to/s.yaml" in again.stderr
    with_file = run_cli("resume", "s.yaml", *args, cwd=work, env=env, timeout=120)
    assert with_file.returncode == 1 and "already finished" in with_file.stderr


@pytest.mark.e2e
def test_what_the_workers_of_a_multi_worker_trial_print_hides_its_secrets(
    short_tmp: Path,
) -> None:
    """Ray Train's workers get the trial's config, secrets in, but not its TrialConfig;
    and Train turns their print into a log record of its own file."""
    token, from_env = _secret("tok"), _secret("env")
    config = {"api_token": token, "hf_token": "${env:TUNER_TEST_HF_TOKEN}"}
    received = {"api_token": token, "hf_token": from_env}
    sweep = _sweep(
        trainable="tests.trainables:secrets_received_on_workers",
        searcher={"kind": "grid"},
        params={"x": {"type": "grid", "values": [1]}},
        resources_per_trial={"workers": 2, "cpu": 1},
        config={**config, "expect": [[k, config_digest(v)] for k, v in received.items()]},
    )
    work = short_tmp / "w"
    work.mkdir()
    (work / "s.yaml").write_text(yaml.safe_dump(sweep))
    env = {"TUNER_TEST_HF_TOKEN": from_env, "RAY_TMPDIR": str(short_tmp / "ray")}
    done = run_cli("run", "s.yaml", "--storage", str(work / "runs"), cwd=work, env=env)
    assert done.returncode == 0, done.stderr
    assert "best trial" in done.stdout and "received = 1" in done.stdout
    output = done.stdout + done.stderr
    assert "'api_token': '<secret>'" in output and "token: <secret>" in output
    secrets = [token, from_env]
    assert not [s for s in secrets if s in output]
    leaks = _files_holding(short_tmp / "ray", secrets) + _files_holding(work / "runs", secrets)
    assert leaks == []
    assert any((short_tmp / "ray").rglob("ray-train-app-worker-*.log"))  # Train's own logs


@pytest.mark.e2e
def test_an_unset_env_reference_stops_the_run_before_ray_starts(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        yaml.safe_dump(_sweep(config={"hf_token": "${env:TUNER_TEST_UNSET}", "expect": []}))
    )
    args = ["--tracking-uri", f"sqlite:///{tmp_path}/m.db", "--storage", str(tmp_path / "r")]
    done = run_cli("run", "s.yaml", *args, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: s.yaml: config.hf_token: ${env:TUNER_TEST_UNSET}: "
        "environment variable TUNER_TEST_UNSET is not set"
    )
    assert not (tmp_path / "r").exists()


def test_validate_names_the_knob_a_user_searched_as_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_sweep(params={"hf_token": {"type": "grid", "values": [1]}})))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.line().startswith(f"{path}: params.hf_token: its name says")
