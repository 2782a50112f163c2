"""When a trainer writes a checkpoint: a pure decision over the epoch and the clock.

The engine hands each built-in trial a plan (the sweep's `checkpoint` policy plus the
epochs where one is forced: ASHA's rungs and max_t, PBT's perturbation points; and
ASHA's max_t, where the trial ends) under `PLAN_KEY` in its config. A trainer of your
own may read the same plan with `CheckpointPlan.from_config(config)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tuner.defaults import CHECKPOINT_EVERY_EPOCHS, CHECKPOINT_MIN_INTERVAL_S

# Reserved config key; the knobs never see it.
PLAN_KEY = "_tuner_checkpoint_plan"
# The result key of an epoch that went on from a mid-epoch checkpoint (a spot notice's):
# the seconds of that epoch's training the checkpoint kept, which no restart lost.
RESUMED_WITHIN_EPOCH = "resumed_within_epoch_s"


@dataclass(frozen=True)
class CheckpointPlan:
    # Without a plan (a built-in called by code of its own): the sweep file's defaults.
    every_epochs: int = CHECKPOINT_EVERY_EPOCHS
    min_interval_s: float = CHECKPOINT_MIN_INTERVAL_S
    forced_epochs: frozenset[int] = field(default_factory=frozenset)
    # Every multiple of this is forced too (PBT clones a trial from the checkpoint of its
    # last perturbation point); 0: none.
    forced_every: int = 0
    # ASHA's max_t: the trial's last epoch when it comes before the trainer's own (ASHA
    # lets a trial at max_t go on to its function's end); 0: none.
    ends_at: int = 0

    def ends_after(self, epoch: int) -> bool:
        """Whether the trial's function ends after `epoch`'s report."""
        return 0 < self.ends_at <= epoch

    def due(self, epoch: int, seconds_since_last: float, *, last: bool) -> bool:
        """Write a checkpoint after `epoch`? `last`: no epoch follows it in this trial."""
        if last or epoch in self.forced_epochs:
            return True
        if self.forced_every and epoch % self.forced_every == 0:
            return True
        return epoch % self.every_epochs == 0 and seconds_since_last >= self.min_interval_s

    def as_config(self) -> dict[str, Any]:
        """Plain values: Ray copies a trial's config around and shows it in results."""
        return {
            "every_epochs": self.every_epochs,
            "min_interval_s": self.min_interval_s,
            "forced_epochs": sorted(self.forced_epochs),
            "forced_every": self.forced_every,
            "ends_at": self.ends_at,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CheckpointPlan:
        raw = config.get(PLAN_KEY)
        if not raw:
            return cls()
        forced: Iterable[int] = raw.get("forced_epochs", ())
        return cls(
            every_epochs=int(raw["every_epochs"]),
            min_interval_s=float(raw["min_interval_s"]),
            forced_epochs=frozenset(int(epoch) for epoch in forced),
            forced_every=int(raw.get("forced_every", 0)),
            ends_at=int(raw.get("ends_at", 0)),
        )


def without_plan(config: Mapping[str, Any]) -> dict[str, Any]:
    """The trial's config as the trainer's knobs expect it."""
    return {key: value for key, value in config.items() if key != PLAN_KEY}
