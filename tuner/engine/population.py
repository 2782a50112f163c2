"""A PBT sweep's lineage, made for the sweep; its best trial's schedule as YAML (kept on
the sweep's run, where `tuner best` prints it)."""

from __future__ import annotations

import yaml

from tuner.search.pbt import Lineage, Segment
from tuner.spec import PbtScheduler, SweepSpec
from tuner.spec.pbt import mutations_of
from tuner.tracking.tags import TAG_SCHEDULE
from tuner.trainer.registry import BUILTINS


def lineage_of(spec: SweepSpec, key: str) -> Lineage | None:
    """The process's lineage for the experiment at `key`; None unless the sweep is PBT."""
    if not isinstance(spec.scheduler, PbtScheduler):
        return None
    builtin = BUILTINS.get(spec.trainable)
    # A trainable of the user's own reads its config again after a restore: any
    # searched param may change (checked at validate for the built-ins).
    changeable = None if builtin is None else builtin.knobs.mutable()
    return Lineage.shared(key, mutations_of(spec, changeable))


def schedule_yaml(segments: list[Segment]) -> str:
    """`schedule:` with the epoch each set of values starts at, ready for a sweep's config."""
    schedule = {segment.epoch: segment.values for segment in segments}
    text: str = yaml.safe_dump({"schedule": schedule}, sort_keys=False)
    return text


def schedule_tags(lineage: Lineage | None, best_trial_id: str) -> dict[str, str]:
    """The sweep run's tag with the best trial's schedule; none unless the sweep is PBT."""
    if lineage is None:
        return {}
    return {TAG_SCHEDULE: schedule_yaml(lineage.schedule(best_trial_id))}
