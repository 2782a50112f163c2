"""A sweep name or job id that names nothing on the cluster is quoted in one short line:
a 10,000-character argument was a 10,000-character error line."""

from __future__ import annotations

from typing import Any

import pytest

from tuner.cluster.jobs import Cluster, ClusterError, shown


class _NoJobs:
    """A Jobs API client whose cluster has run no jobs."""

    def list_jobs(self) -> list[Any]:
        return []


def test_a_long_name_is_cut_short_in_the_error() -> None:
    cluster = Cluster("http://127.0.0.1:8265", _client=_NoJobs())  # type: ignore[arg-type]
    with pytest.raises(ClusterError) as raised:
        cluster.latest("x" * 10_000)
    message = str(raised.value)
    assert len(message) < 200
    assert "... (10000 characters)" in message


def test_odd_characters_are_escaped() -> None:
    assert shown("a\nb\x1b[2J") == repr("a\nb\x1b[2J")
    assert "\n" not in shown("a\nb") and "\x1b" not in shown("\x1b")
