"""A sweep's state moved (or copied) to another folder or bucket since it ran: refused,
naming where it ran.

Ray Tune's saved trials keep the paths they ran under, and the sweep's MLflow run is
found by its experiment's path. A resume from the new place went on in a new sweep run
(a started trial's epochs split over two runs, one KILLED, one FINISHED, an epoch in
both) and a trial that had not started failed "Unable to set up cluster storage".
"""

from __future__ import annotations

from mlflow import MlflowClient

from tuner.engine.experiments import Experiment, NothingToResume
from tuner.tracking.tags import TAG_EXPERIMENT_PATH, TAG_ROLE


def refuse_if_moved(sweep: str, experiment: Experiment, tracking_uri: str) -> None:
    """NothingToResume when the sweep's run names this experiment's folder (its name is
    unique: start time and random digits) at another place."""
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(sweep)
    if found is None:
        return
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.`{TAG_ROLE}` = 'sweep' and "
        f"tags.`{TAG_EXPERIMENT_PATH}` LIKE '%/{experiment.name}'",
    )
    tail = f"/{experiment.sweep}/{experiment.name}"
    for run in runs:
        ran_in = run.data.tags[TAG_EXPERIMENT_PATH]
        if ran_in.endswith(tail) and ran_in != experiment.uri:
            storage = ran_in.removesuffix(tail)
            raise NothingToResume(
                f"sweep {sweep!r} ran with its state in {ran_in}, not {experiment.uri}: Ray "
                f"Tune's saved trials and the sweep's MLflow runs name that place; move it "
                f"back and run `tuner resume {sweep} --storage {storage}`"
            )
