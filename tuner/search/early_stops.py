"""The ledger of trials a scheduler stopped early, shared by scheduler, searcher and tracker."""

from __future__ import annotations

from tuner.search.shared_by_key import SharedByKey


class EarlyStops(SharedByKey):
    """The trials a scheduler stopped before max_t, shared by scheduler, searcher, tracker.

    Ray pickles the scheduler and searcher into the experiment and unpickles them on
    restore, apart from each other and from our callbacks. A ledger therefore pickles as
    its key: every copy unpickled in a process is that process's one ledger for the key.
    """

    def __init__(self, key: str = "") -> None:
        super().__init__(key)
        self._trial_ids: set[str] = set()

    def add(self, trial_id: str) -> None:
        self._trial_ids.add(trial_id)

    def __contains__(self, trial_id: object) -> bool:
        return trial_id in self._trial_ids

    def __len__(self) -> int:
        return len(self._trial_ids)
