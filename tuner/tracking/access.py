"""Can this process use the tracking store? Checked in seconds before a sweep starts,
and a refusal said in one line: a server that is down, a login it refuses, an experiment
the login may not touch. Credentials come from MLflow's own environment variables and
are never printed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlparse
from urllib.request import urlopen

from mlflow import MlflowClient
from mlflow.environment_variables import (
    MLFLOW_ALLOW_FILE_STORE,
    MLFLOW_TRACKING_PASSWORD,
    MLFLOW_TRACKING_TOKEN,
    MLFLOW_TRACKING_USERNAME,
)
from mlflow.exceptions import MlflowException

from tuner.spec.secrets import has_login
from tuner.tracking.writer import TrackingError

UNAUTHENTICATED, FORBIDDEN = 401, 403


class TrackingLoginError(TrackingError):
    """The tracking server refused who we are, or what that identity asked for."""


def redacted(tracking_uri: str) -> str:
    """The URI with any password in it replaced, fit to print."""
    parsed = urlparse(tracking_uri)
    if parsed.password is None:
        return tracking_uri
    host = parsed.netloc.rpartition("@")[2]
    return parsed._replace(netloc=f"{parsed.username}:***@{host}").geturl()


def check_tracking_reachable(
    tracking_uri: str, timeout_s: float = 5.0, *, must_exist: bool = False
) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when a server is down or
    refuses our login. `must_exist`: a command that only reads (tuner best) must not
    create an empty SQLite store where none was."""
    if has_login(tracking_uri):
        raise TrackingLoginError(
            f"tracking URI {redacted(tracking_uri)}: put the login in "
            f"{MLFLOW_TRACKING_USERNAME.name} / {MLFLOW_TRACKING_PASSWORD.name}, not in the "
            "URI (MLflow would print and store it)"
        )
    parsed = urlparse(tracking_uri)
    if parsed.scheme in ("http", "https"):
        try:
            with urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout_s) as response:
                response.read()
        except (URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(
                f"MLflow tracking server {tracking_uri} unreachable: {reason}"
            ) from None
        check_login(tracking_uri)
    elif parsed.scheme in ("", "file") and not MLFLOW_ALLOW_FILE_STORE.get():
        # MLflow 3 refuses its file store with a paragraph and a traceback, after Ray started.
        raise TrackingError(
            f"tracking URI {tracking_uri}: MLflow 3 keeps its file store for old runs "
            "(MLFLOW_ALLOW_FILE_STORE=true opens it); use sqlite:///PATH/mlflow.db or a server"
        )
    elif parsed.scheme == "sqlite":
        database = Path(tracking_uri.removeprefix("sqlite:///"))
        if not database.parent.is_dir():
            raise TrackingError(
                f"tracking URI {tracking_uri}: folder {database.parent} does not exist"
            )
        if must_exist and not database.is_file():
            raise TrackingError(f"tracking URI {tracking_uri}: no MLflow store at {database}")


def check_login(tracking_uri: str) -> None:
    """One cheap authenticated request, through MLflow's client so that every way it
    logs in (basic auth, a token, a request-header plugin) is the one checked."""
    with tracking_access(tracking_uri):
        MlflowClient(tracking_uri).search_experiments(max_results=1)


@contextmanager
def tracking_access(tracking_uri: str) -> Iterator[None]:
    """Turns the server's 401 or 403 into TrackingLoginError with one clear line."""
    try:
        yield
    except MlflowException as exc:
        problem = access_problem(exc, tracking_uri)
        if problem is None:
            raise
        raise TrackingLoginError(problem) from None


def access_problem(exc: MlflowException, tracking_uri: str) -> str | None:
    """What a refused request means for the user, or None if it was not refused."""
    status = exc.get_http_status_code()
    user = MLFLOW_TRACKING_USERNAME.get()
    variables = f"{MLFLOW_TRACKING_USERNAME.name} / {MLFLOW_TRACKING_PASSWORD.name}"
    if status == UNAUTHENTICATED:
        if user or MLFLOW_TRACKING_TOKEN.get():
            who = f"the login of {user!r}" if user else f"the token in {MLFLOW_TRACKING_TOKEN.name}"
            return f"MLflow tracking server {tracking_uri} refused {who} ({variables})"
        return (
            f"MLflow tracking server {tracking_uri} asks for a login: set {variables} "
            f"(or {MLFLOW_TRACKING_TOKEN.name}) in the environment"
        )
    if status == FORBIDDEN:
        first_line = str(exc.message).splitlines()[0] if exc.message else "permission denied"
        return (
            f"MLflow tracking server {tracking_uri} does not let {user or 'this login'} do "
            f"that ({variables}): {first_line}"
        )
    return None
