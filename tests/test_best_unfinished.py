"""`tuner best` of a sweep with no finished run says what became of its latest run.

It said only "has no finished run with a best trial": a user whose sweep had been
interrupted was not told that `tuner resume` would finish it and give them a best.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from tuner.tracking.best import SweepNotFound, best_of_sweep
from tuner.tracking.tags import TAG_ROLE


def sweep_run_ended(tmp_path: Path, status: str | None) -> str:
    """A store holding sweep 'digits' whose one run ended with `status` (None: running)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("digits")
    run = client.create_run(experiment_id, run_name="digits", tags={TAG_ROLE: "sweep"})
    if status is not None:
        client.set_terminated(run.info.run_id, status)
    return uri


@pytest.mark.parametrize(
    ("status", "said"),
    [
        ("KILLED", "its latest run was interrupted: `tuner resume digits` finishes it"),
        (None, "its latest run is still RUNNING (if its driver is gone, `tuner resume digits`)"),
        ("FAILED", "its latest run ended FAILED"),
    ],
)
def test_best_of_a_sweep_that_never_finished_says_what_became_of_it(
    tmp_path: Path, status: str | None, said: str
) -> None:
    uri = sweep_run_ended(tmp_path, status)
    with pytest.raises(SweepNotFound) as raised:
        best_of_sweep("digits", uri)
    assert (
        str(raised.value)
        == f"sweep 'digits' in {uri} has no finished run with a best trial; {said}"
    )
