"""The ledger of trials a scheduler stopped early, shared by scheduler, searcher and tracker."""

from __future__ import annotations

from typing import Any, ClassVar


class EarlyStops:
    """The trials a scheduler stopped before max_t, shared by scheduler, searcher, tracker.

    Ray pickles the scheduler and searcher into the experiment and unpickles them on
    restore, apart from each other and from our callbacks. A ledger therefore pickles as
    its key: every copy unpickled in a process is that process's one ledger for the key.
    """

    _shared: ClassVar[dict[str, EarlyStops]] = {}

    def __init__(self, key: str = "") -> None:
        self.key = key
        self._trial_ids: set[str] = set()

    @classmethod
    def shared(cls, key: str) -> EarlyStops:
        """The process's ledger for `key` (an experiment path), created on first use."""
        if key not in cls._shared:
            cls._shared[key] = cls(key)
        return cls._shared[key]

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (EarlyStops.shared, (self.key,))

    def add(self, trial_id: str) -> None:
        self._trial_ids.add(trial_id)

    def __contains__(self, trial_id: object) -> bool:
        return trial_id in self._trial_ids

    def __len__(self) -> int:
        return len(self._trial_ids)
