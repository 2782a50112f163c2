"""The Jobs API client's answers to odd input, in one short line and bounded time: a sweep
name or job id that names nothing (a 10,000-character one was a 10,000-character error
line), a head that accepts connections and never answers."""

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


def test_a_head_that_never_answers_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: Ray's client set no timeout, and `tuner status` waited for as long as the
    user did (over 100 s seen) on a port that accepts connections and says nothing."""
    import socket
    import time

    from tuner.cluster import jobs

    monkeypatch.setattr(jobs, "JOBS_API_TIMEOUT_S", (1.0, 1.0))
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(ClusterError, match=f"cannot reach the Ray Jobs API at {address}"):
            jobs.connect(address)
        assert time.monotonic() - started < 10
