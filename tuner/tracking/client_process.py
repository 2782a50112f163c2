"""An MLflow client in a child process, for the tracking writer on a database store.

On a `sqlite:///` (or any database) tracking URI, MLflow's client is SQLAlchemy running
in the caller's process: 15-18 ms of CPU for a trial's three writes (create, log_batch,
terminate), most of it Python holding the GIL. In the driver that time was taken from
Ray Tune's event loop, which needs about as much again per trial: on small trials the
two together were the sweep's bound (bench/README, "The writer's own process"). Here
the writer's thread only pickles a request and waits on a socket, the GIL released;
the SQL runs in a child of its own.

The child writes a SQLite file in WAL mode with `synchronous=NORMAL`, so a commit
appends to the write-ahead log without syncing the disk: measured, a trial's writes
took 15% less CPU and 30% less time. A crash of any process loses nothing committed; a
power cut can take back the last commits, never corrupt the file. Readers (`tuner
status`, the MLflow UI) read on while it writes. The child folds the log back into
the database file when the writer closes, and SQLite does when the driver's last
connection closes: `mlflow.db` alone then holds the sweep (a copy of it without
`mlflow.db-wal` misses nothing), also while a notebook's driver lives on.

A child that ends, or cannot start, fails every later call with a ConnectionError: to
the writer the store has stopped answering, so its writes wait in the journal.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import ErrorCode

from tuner.tracking.first_use import sqlite_database

logger = logging.getLogger(__name__)

MODULE_NAME = __name__  # what the child runs, `python -m` it
# MLflow client methods the writer calls; nothing else is served.
SERVED = frozenset({"create_run", "log_inputs", "log_batch", "set_terminated", "update_run",
                    "delete_tag", "get_run", "log_artifacts", "create_logged_model",
                    "log_model_artifacts", "finalize_logged_model", "log_outputs",
                    "create_registered_model", "create_model_version"})  # fmt: skip
# How long close() waits for the child to finish its last request and exit.
CLOSE_WAIT_S = 30.0


class ClientProcess:
    """The writer's MlflowClient, its calls served by a child process in order."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        ours, theirs = socket.socketpair()
        self._process = subprocess.Popen(
            [sys.executable, "-m", MODULE_NAME, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C and SIGTERM are the driver's to handle
        )
        theirs.close()
        self._connection = Connection(ours.detach())
        # Over the socket, not on the command line: a database URI may carry a password,
        # and any user of the machine can list a process's arguments.
        self._connection.send(tracking_uri)
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name not in SERVED:
            raise AttributeError(name)
        return lambda *args, **kwargs: self._call(name, args, kwargs)

    def _call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        with self._lock:
            try:
                self._connection.send((name, args, kwargs))
                answered, value = self._connection.recv()
            except (OSError, EOFError) as exc:
                raise ConnectionError(
                    f"the MLflow writer process ended (exit code {self._process.poll()})"
                ) from exc
        if answered:
            return value
        raise _rebuilt(value)

    def close(self) -> None:
        """Let the child finish and exit; it also exits on its own when this process
        ends, since its end of the socket then closes."""
        with self._lock:
            self._connection.close()
        try:
            self._process.wait(timeout=CLOSE_WAIT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()


def _portable(exc: Exception) -> tuple[str, str, str | None]:
    """An exception as plain values: MlflowException's error code does not survive
    pickling, and it decides whether the store counts as gone."""
    if isinstance(exc, MlflowException):
        return "mlflow", exc.message, exc.error_code
    kind = "os" if isinstance(exc, OSError) else "other"
    return kind, f"{type(exc).__name__}: {exc}", None


def _rebuilt(portable: tuple[str, str, str | None]) -> Exception:
    kind, message, error_code = portable
    if kind == "mlflow":
        return MlflowException(message, error_code=ErrorCode.Value(error_code or "INTERNAL_ERROR"))
    return OSError(message) if kind == "os" else RuntimeError(message)


# File systems where SQLite's WAL mode, which needs memory shared between processes,
# does not work (SQLite's documentation: "WAL does not work over a network filesystem").
NETWORK_FILE_SYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs",
                                  "9p", "afs", "ceph", "glusterfs", "lustre"})  # fmt: skip


def on_network_file_system(path: Path, mounts: Path = Path("/proc/mounts")) -> bool:
    """Whether `path` lies on a network file system, by the mount table (Linux); where
    there is none to read, the file counts as local."""
    try:
        table = mounts.read_text().splitlines()
    except OSError:
        return False
    resolved, best, kind = str(path.resolve()), "", ""
    for line in table:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, fields[2]
    return kind in NETWORK_FILE_SYSTEMS


def write_ahead_logging() -> None:
    """This process's SQLite connections: WAL, no sync per commit (the module's docstring)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _pragmas(connection: Any, record: Any) -> None:
        if type(connection).__module__.startswith("sqlite3"):
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()


def fold_write_ahead_log(database: Path) -> None:
    """Copy the write-ahead log into the database file and empty it. A no-op on a file
    in the classic journal mode; a failure (the file gone, a reader holding it) only
    leaves the log beside the file, where SQLite reads it from."""
    try:
        connection = sqlite3.connect(database, timeout=5)
        try:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            connection.close()
    except sqlite3.Error as exc:
        logger.debug("SQLite log of %s not folded back: %s", database, exc)


def serve(fd: int) -> None:
    """The child: take the tracking URI, then answer each request until the driver's
    end of the socket closes."""
    import mlflow
    from mlflow import MlflowClient

    from tuner.tracking.client_settings import bound_mlflow_retries, skip_run_links

    connection = Connection(fd)
    try:
        tracking_uri: str = connection.recv()
    except (EOFError, OSError):
        return
    skip_run_links()
    bound_mlflow_retries()
    # MLflow's SQL registry reads a `models:/<id>` source through the process's global
    # URI (tuner.tracking.own_models): this process has one store.
    mlflow.set_tracking_uri(tracking_uri)
    database = sqlite_database(tracking_uri)
    if database is not None and on_network_file_system(database):
        database = None  # the classic journal: nothing to switch, nothing to fold back
    if database is not None:
        write_ahead_logging()
    client = MlflowClient(tracking_uri)
    while True:
        try:
            name, args, kwargs = connection.recv()
        except (EOFError, OSError):
            break
        try:
            if name not in SERVED:
                raise ValueError(f"not served: {name}")
            answer: tuple[bool, Any] = (True, getattr(client, name)(*args, **kwargs))
        except Exception as exc:  # the driver decides what a failure means
            answer = (False, _portable(exc))
        try:
            connection.send(answer)
        except OSError:
            break
    if database is not None:
        fold_write_ahead_log(database)


if __name__ == "__main__":
    # The child ignores Ctrl-C: the driver flushes on it, and needs the child to do so.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING)
    serve(int(sys.argv[1]))
