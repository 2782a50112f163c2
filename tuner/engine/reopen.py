"""The MLflow run a resumed sweep goes on in, opened again only when that is safe."""

from __future__ import annotations

from tuner.engine.experiments import Experiment, NothingToResume
from tuner.engine.moved_storage import refuse_if_moved
from tuner.engine.state_digest import TAG_STATE_DIGEST, check_state
from tuner.spec import SweepSpec
from tuner.tracking.access import redacted
from tuner.tracking.runs import SweepRun
from tuner.tracking.tags import TAG_BUDGET_REACHED, TAG_STOPPED_BY


def reopen_sweep(
    spec: SweepSpec, experiment: Experiment, tracking_uri: str, *, extended: bool
) -> tuple[SweepRun, str | None]:
    """(the sweep's parent run, RUNNING again; a note for the user, or None).

    Before Ray unpickles a byte of it, the state must be what the sweep left
    (StateChanged otherwise). A finished sweep goes on only when its budget stopped it
    and `extended` (a new budget was given); NothingToResume otherwise.
    """
    sweep = SweepRun.find(spec, tracking_uri, experiment.uri)
    if sweep is None:  # the tracking store lost it, or the sweep ran with another one
        refuse_if_moved(spec.name, experiment, tracking_uri)  # or its state was moved
        check_state(experiment, None)  # no digest to compare with, as the note says
        lost = (
            f"note: {redacted(tracking_uri)} holds no MLflow run of sweep {spec.name!r} "
            f"({experiment.uri}), nor the digest of its state: it goes on unchecked, in a "
            "new run there; a sweep run with another --tracking-uri resumes with that one"
        )
        return SweepRun.start(spec, None, tracking_uri), lost
    run = sweep.client.get_run(sweep.run_id)  # read once: status and every tag
    tags = run.data.tags
    stale = [TAG_STATE_DIGEST]  # the state changes from here on
    if run.info.status == "FINISHED":
        reached = tags.get(TAG_BUDGET_REACHED)
        if reached is None:
            raise NothingToResume(f"sweep {spec.name!r} ({experiment.uri}) already finished")
        if not extended:
            raise NothingToResume(
                f"sweep {spec.name!r} stopped at its budget ({reached}); "
                f"`tuner resume {spec.name} --budget '{{max_wall: 2h}}'` (say) extends it"
            )
        # A budget-stopped sweep's best so far (`best.<param>` tags): the end records anew.
        stale += [TAG_STOPPED_BY, TAG_BUDGET_REACHED, *(t for t in tags if t.startswith("best."))]
    recorded = tags.get(TAG_STATE_DIGEST)
    note = check_state(experiment, recorded)
    sweep.reopen(tags)
    for tag in stale:
        if tag != TAG_STATE_DIGEST or recorded is not None:
            sweep.forget_tag(tag)
    return sweep, note
