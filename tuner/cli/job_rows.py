"""What `tuner status` says of each submitted job: its trial counts, or why there are none.

The text and the `--json` output are made from the same (job, counts, problem) row, so
a script sees the problem (a refused MLflow login, a server that is down) that the text
shows. The tracking server is asked whether it answers first, in seconds: MLflow's own
client retries a server that is down for minutes, per job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner.cluster.jobs import SweepJob
    from tuner.tracking.status import TrialCounts


def job_counts(job: SweepJob, tracking_uri: str | None) -> tuple[TrialCounts | None, str]:
    """(the job's trial counts or None, the problem that kept them from us or "")."""
    from tuner.tracking.access import check_tracking_reachable, redacted, tracking_access
    from tuner.tracking.status import trial_counts
    from tuner.tracking.writer import TrackingError

    uri = tracking_uri or job.tracking_uri
    if not uri:
        return None, ""
    try:
        check_tracking_reachable(uri)
        with tracking_access(uri):
            return trial_counts(uri, job.sweep, job.submission_id, job_ended=job.finished), ""
    except TrackingError as exc:  # down, refused our login, or a login in the URI
        return None, str(exc)
    except Exception as exc:  # the job's state is still worth showing
        return None, f"MLflow {redacted(uri)} unreadable: {type(exc).__name__}"


def json_row(job: SweepJob, counts: TrialCounts | None, problem: str) -> dict[str, Any]:
    """One job as `tuner status --json` prints it; `problem` is null when there is none."""
    return {
        "sweep": job.sweep,
        "job": job.submission_id,
        "action": job.action,
        "status": job.status,
        "message": job.message,
        "problem": problem or None,
        **(counts.as_dict() if counts else {}),
    }
