"""The sweep file: its schema (pydantic v2), its params, and reading it from YAML.

This package is the contract between a user's YAML and the rest of tuner. It may import
only `tuner.defaults`: no Ray, no torch, no user code, so `tuner validate` is instant and
runs anywhere. Every problem with a file is a `SpecError` that renders as one line.
"""

from __future__ import annotations

from tuner.spec.errors import KeyedProblem, SpecError
from tuner.spec.loader import parse_spec, read_spec, with_budget
from tuner.spec.params import CategoricalParam, FloatParam, GridParam, IntParam, Param, Scalar
from tuner.spec.pbt import Pb2Scheduler, PbtScheduler
from tuner.spec.resources import Resources
from tuner.spec.schema import CheckpointPolicy, SweepSpec
from tuner.spec.searchers import (
    AshaScheduler,
    FifoScheduler,
    GridSearcher,
    OptunaSampler,
    OptunaSearcher,
    RandomSearcher,
    Scheduler,
    Searcher,
)

__all__ = [
    "AshaScheduler",
    "CategoricalParam",
    "CheckpointPolicy",
    "FifoScheduler",
    "FloatParam",
    "GridParam",
    "GridSearcher",
    "IntParam",
    "KeyedProblem",
    "OptunaSampler",
    "OptunaSearcher",
    "Param",
    "Pb2Scheduler",
    "PbtScheduler",
    "RandomSearcher",
    "Resources",
    "Scalar",
    "Scheduler",
    "Searcher",
    "SpecError",
    "SweepSpec",
    "parse_spec",
    "read_spec",
    "with_budget",
]
