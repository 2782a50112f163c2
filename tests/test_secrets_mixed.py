"""A secret written as literal text beside an `${env:NAME}` (`password: "abc${env:PW}"`):
its literal part went to MLflow's params and the stored sweep.yaml, since any reference
in the value passed it as "a name, fine to show". The whole value is withheld now, and
still reaches the trials, after `tuner resume` too."""

from __future__ import annotations

import shutil
import signal
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import run_and_signal, run_cli
from tests.trainables import config_digest
from tuner.spec.secrets import WITHHELD, withhold


def test_literal_text_beside_a_reference_withholds_the_whole_value() -> None:
    config = {
        "password": "abc${env:PW}",
        "api_key": "sk-live-${env:KEY}",
        "url": "postgres://u:hunter2@h/${env:DB}",
        "hf_token": "${env:HF_TOKEN}",
        "pair_token": "${env:A}${env:B}",  # references only: nothing literal to leak
        "root": "/data/${env:USER}",  # not a secret by its name: shown as before
        # The URL's own secret slot holds the reference: the rest says where, not who.
        "db_dsn": "postgresql://app:${env:PW}@db/x",
        "sentry_dsn": "https://${env:SENTRY}@o1.ingest.sentry.io/42",  # no password slot
    }
    shown, withheld = withhold(config)
    assert shown == {
        **config,
        "password": WITHHELD,
        "api_key": WITHHELD,
        "url": WITHHELD,
        "sentry_dsn": WITHHELD,
    }
    assert withheld == {k: config[k] for k in ("password", "api_key", "url", "sentry_dsn")}


TRAINABLE = textwrap.dedent(
    """
    import hashlib
    import json
    import time
    from pathlib import Path

    from ray import tune


    def digest(value):
        return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


    def fit(config):
        got = all(digest(config.get(key)) == want for key, want in config["expect"])
        for epoch in range(1, config["epochs"] + 1):
            Path(config["started"]).touch()  # tells the test a trial is mid-run
            time.sleep(0.2)
            tune.report({"epoch": epoch, "received": float(got)})
    """
)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """Ray's socket paths must stay under ~100 characters: a short temp folder."""
    folder = Path(tempfile.mkdtemp(prefix="tm-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _strings_holding(value: object, literal: str) -> bool:
    return literal in yaml.safe_dump(value)


@pytest.mark.e2e
def test_a_mixed_secret_is_nowhere_in_mlflow_or_storage_and_reaches_resumed_trials(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    literal, db_literal = f"lit-{uuid.uuid4().hex}", f"pw-{uuid.uuid4().hex}"
    from_env = f"env-{uuid.uuid4().hex}"
    work = short_tmp / "w"
    work.mkdir()
    (work / "mixed.py").write_text(TRAINABLE)
    started = work / "started"
    config = {
        "password": f"{literal}${{env:TUNER_TEST_PW}}",
        "url": f"postgres://u:{db_literal}@h/${{env:TUNER_TEST_PW}}",
    }
    received = {
        "password": f"{literal}{from_env}",
        "url": f"postgres://u:{db_literal}@h/{from_env}",
    }
    sweep = {
        "name": "mixed",
        "trainable": "mixed:fit",
        "metric": "received",
        "mode": "max",
        "num_samples": 3,
        "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "config": {
            **config,
            "started": str(started),
            "epochs": 10,
            "expect": [[k, config_digest(v)] for k, v in received.items()],
        },
    }
    (work / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    # run_and_signal passes this process's environment on, as a user's shell does.
    monkeypatch.setenv("TUNER_TEST_PW", from_env)
    monkeypatch.setenv("RAY_TMPDIR", str(short_tmp / "ray"))

    stopped = run_and_signal(work, started, signal.SIGTERM, "run", "sweep.yaml")
    assert stopped.returncode == 143, stopped.stderr
    resumed = run_cli("resume", "sweep.yaml", cwd=work)
    assert resumed.returncode == 0, resumed.stderr
    assert "3 trials: 3 finished" in resumed.stdout

    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mixed")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    trials = [run for run in runs if run.data.tags.get("tuner.role") == "trial"]
    assert len(trials) == 3
    for run in trials:  # each report, before the Ctrl-C and after the resume
        history = client.get_metric_history(run.info.run_id, "received")
        assert history and {point.value for point in history} == {1.0}
    parent = next(run for run in runs if run.data.tags.get("tuner.role") == "sweep")
    assert parent.data.params["config.password"] == WITHHELD

    secrets = [literal, db_literal, from_env]
    for run in runs:
        shown: list[object] = [run.data.params, run.data.tags]
        into = short_tmp / "artifacts" / run.info.run_id
        into.mkdir(parents=True)
        artifacts = Path(client.download_artifacts(run.info.run_id, "", str(into)))
        shown += [
            p.read_bytes().decode(errors="replace") for p in artifacts.rglob("*") if p.is_file()
        ]
        assert not [s for s in secrets if _strings_holding(shown, s)], run.info.run_name
    (stored,) = (work / "tuner_runs").rglob("sweep.yaml")
    assert yaml.safe_load(stored.read_text())["config"]["password"] == WITHHELD
    assert not [s for s in secrets if s in stored.read_text()]
    # Nor anywhere else tuner, MLflow or Ray wrote, nor in what the user saw.
    for path in [*work.rglob("*"), *(short_tmp / "ray").rglob("*")]:
        if path.is_file() and not path.is_symlink() and path != work / "sweep.yaml":
            try:
                data = path.read_bytes()
            except OSError:
                continue  # a socket or a file Ray removed meanwhile
            assert not [s for s in secrets if s.encode() in data], path
    output = stopped.stdout + stopped.stderr + resumed.stdout + resumed.stderr
    assert not [s for s in secrets if s in output]
