"""Ray's PB2, recorded and kept in range as tuner's PBT is (tuner.search.pbt).

A module of its own: Ray's PB2 imports scikit-learn for its Gaussian process, and only
a PB2 sweep should pay for that import.
"""

from __future__ import annotations

from ray.tune.schedulers.pb2 import PB2

from tuner.search.pbt import RecordedPBT


class RecordedPB2(RecordedPBT, PB2):  # type: ignore[misc]
    """Ray's PB2 (its GP bandit picks the new values), recorded and kept in range as PBT."""
