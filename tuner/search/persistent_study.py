"""The database a sweep's Optuna study lives in, as Ray may save it.

Ray pickles the searcher, study and storage included, into the experiment's state on
the sweep's storage (S3 on a cluster). Optuna's RDBStorage pickles its URL, password
and all; this one pickles the URL as the sweep file wrote it (`${env:NAME}` in place of
the password) and reads the environment again when Ray restores it.
"""

from __future__ import annotations

from typing import Any

import optuna

from tuner.spec.secrets import resolved

STORAGE_KEY = "searcher.storage"


class StudyStorage(optuna.storages.RDBStorage):  # type: ignore[misc]
    def __init__(self, written: str) -> None:
        self.written = written
        super().__init__(resolved(written, STORAGE_KEY))

    def __getstate__(self) -> dict[Any, Any]:
        state: dict[Any, Any] = super().__getstate__()
        state["url"] = self.written
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__({**state, "url": resolved(state["written"], STORAGE_KEY)})
