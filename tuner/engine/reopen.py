"""The MLflow run a resumed sweep goes on in, opened again only when that is safe."""

from __future__ import annotations

from tuner.engine.experiments import Experiment, NothingToResume
from tuner.engine.state_digest import TAG_STATE_DIGEST, check_state
from tuner.spec import SweepSpec
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
    if sweep is None:  # the tracking store lost it: the rest goes into a new run
        note = check_state(experiment, None)
        return SweepRun.start(spec, None, tracking_uri), note
    stale = [TAG_STATE_DIGEST]  # the state changes from here on
    if sweep.status == "FINISHED":
        reached = sweep.tag(TAG_BUDGET_REACHED)
        if reached is None:
            raise NothingToResume(f"sweep {spec.name!r} ({experiment.uri}) already finished")
        if not extended:
            raise NothingToResume(
                f"sweep {spec.name!r} stopped at its budget ({reached}); "
                f"`tuner resume {spec.name} --budget '{{max_wall: 2h}}'` (say) extends it"
            )
        stale += [TAG_STOPPED_BY, TAG_BUDGET_REACHED, *sweep.best_tags()]
    recorded = sweep.tag(TAG_STATE_DIGEST)
    note = check_state(experiment, recorded)
    sweep.reopen()
    for tag in stale:
        if tag != TAG_STATE_DIGEST or recorded is not None:
            sweep.forget_tag(tag)
    return sweep, note
