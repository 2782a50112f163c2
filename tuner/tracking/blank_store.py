"""A new SQLite store starts as a copy of a blank one, not as MLflow's migrations.

MLflow builds a SQLite store the first time a client opens it: its first tables, then
every schema migration since (dozens of them, through Alembic). That costs about 2 s of
CPU, paid by the first sweep in every new folder, in the second a sweep is busiest
(its Ray starts meanwhile). The result depends only on MLflow's version: one blank store
per version, built once in the user's cache, is copied in place of the building.

The copy holds MLflow's tables at its schema and nothing else: MLflow then adds its
Default experiment itself, with this folder's artifact location, as it does for a store
it built. Whatever goes wrong here (no cache folder, a read-only home) leaves the store
to MLflow, as before.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

_log = logging.getLogger(__name__)


def cache_folder() -> Path:
    """`$XDG_CACHE_HOME/tuner`, or `~/.cache/tuner`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tuner"


def blank_store_name() -> str:
    """The blank store's file name: one per MLflow (and SQLAlchemy) version."""
    import mlflow
    import sqlalchemy

    return f"mlflow-{mlflow.__version__}-sqlalchemy-{sqlalchemy.__version__}-blank.db"


def place_blank_store(database: Path) -> bool:
    """Before MLflow first opens `database`: a copy of the blank store there, unless a
    file is there already. Whether one was placed. Call it under the store's lock."""
    if database.exists():
        return False
    try:
        blank = _blank_store()
        copying = Path(tempfile.mkstemp(dir=database.parent, prefix=f".{database.name}.")[1])
        try:
            shutil.copyfile(blank, copying)
            os.link(copying, database)  # never over a store another program made meanwhile
        finally:
            copying.unlink(missing_ok=True)
    except Exception as exc:  # MLflow builds the store, as it would without this module
        _log.debug("no blank store copied to %s: %s", database, exc)
        return False
    return True


def _blank_store() -> Path:
    folder = cache_folder()
    blank = folder / blank_store_name()
    if blank.exists():
        return blank
    folder.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkstemp(dir=folder, prefix=f".{blank.name}.")[1])
    try:
        _build(building)
        os.replace(building, blank)  # whole or not at all, for every process that looks
    finally:
        building.unlink(missing_ok=True)
    return blank


def _build(database: Path) -> None:
    """MLflow's own first tables and migrations, on an empty file."""
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    engine = sqlalchemy.create_engine(f"sqlite:///{database}")
    try:
        _initialize_tables(engine)
    finally:
        engine.dispose()
