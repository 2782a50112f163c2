"""How the driver's MLflow client talks to a tracking store: requests in parallel to a
server, none spent on printing links, retries bounded, and which failures mean the
store is gone (rather than a write it refused)."""

from __future__ import annotations

import os
from urllib.parse import urlparse

from mlflow.environment_variables import (
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    MLFLOW_HTTP_REQUEST_TIMEOUT,
    MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT,
)
from mlflow.exceptions import MlflowException

# Requests in flight to a tracking server: runs/create, log-batch and update of different
# trials overlap their round trips (~50 ms each on loopback, more across a network).
SERVER_REQUESTS_IN_FLIGHT = 8


def requests_in_flight(tracking_uri: str) -> int:
    """A tracking server serves requests in parallel; a SQLite file locks for each write."""
    return SERVER_REQUESTS_IN_FLIGHT if urlparse(tracking_uri).scheme in ("http", "https") else 1


def in_process_sql(tracking_uri: str) -> bool:
    """Whether MLflow's client for this URI runs the store's SQL in the caller's process
    (a database URI), rather than sending requests to a server or writing files."""
    scheme = urlparse(tracking_uri).scheme.split("+")[0]
    return scheme in ("sqlite", "postgresql", "mysql", "mssql")


def skip_run_links() -> None:
    """MLflow's set_terminated fetches the run again (one more request per trial on a
    server) only to print a link to it on stdout; tuner prints its own summary."""
    os.environ.setdefault(MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT.name, "true")


# MLflow retries a request 7 times, 2 s x 2^n apart, each attempt waiting up to 120 s:
# a server gone for good held a finished sweep for 15 minutes and more. Retries 1, 2, 4,
# 8 and 16 s apart still ride out a 30 s outage (a restart); then the store counts as
# gone, and the writes wait in a journal (tuner.tracking.journal). A user's own settings
# of these variables win.
BOUNDED_RETRIES = {
    MLFLOW_HTTP_REQUEST_MAX_RETRIES.name: "5",
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.name: "1",
    MLFLOW_HTTP_REQUEST_TIMEOUT.name: "30",
}


def bound_mlflow_retries() -> None:
    for name, value in BOUNDED_RETRIES.items():
        os.environ.setdefault(name, value)


def store_unavailable(exc: Exception) -> bool:
    """The store did not answer (after MLflow's retries) or failed on its side; a 4xx is
    a write it refused, which a retry later would not change."""
    if isinstance(exc, MlflowException):
        return int(exc.get_http_status_code()) >= 500
    return isinstance(exc, OSError)
