"""What the Tune callbacks ask of the tracking writer: a run's start, its points, tags and
end, each an immutable operation on one trial's run, applied in order per trial."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.entities import Metric


class TrackingError(RuntimeError):
    """Writes to the tracking store failed; raised when the sweep flushes its tracking."""


@dataclass(frozen=True)
class CreateRun:
    trial_id: str
    run_name: str
    params: dict[str, str]
    tags: dict[str, str]
    # The data it trains on, as an MLflow dataset input's fields (tracking/datasets.py).
    dataset: dict[str, str] | None = None


@dataclass(frozen=True)
class LogMetrics:
    trial_id: str
    metrics: tuple[Metric, ...]


@dataclass(frozen=True)
class EndRun:
    trial_id: str
    status: str
    tags: dict[str, str]


@dataclass(frozen=True)
class ReopenRun:
    """A resumed trial's run is RUNNING again, without the tags of how it ended."""

    trial_id: str
    stale_tags: tuple[str, ...]


@dataclass(frozen=True)
class SetTags:
    trial_id: str
    tags: dict[str, str]


@dataclass(frozen=True)
class CopyOwnLogs:
    """What the trial's function logged to MLflow itself, left at `location` (a folder
    or s3://bucket/path of the sweep's storage): copied into its run
    (tracking.own_logs)."""

    trial_id: str
    location: str


Op = CreateRun | LogMetrics | EndRun | ReopenRun | SetTags | CopyOwnLogs


class TrackingOffline(TrackingError):
    """The tracking store stopped answering; the writes it missed are in a journal."""
