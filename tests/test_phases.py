"""The phase clock behind `tuner run --profile`: spans and moments since the process began."""

from __future__ import annotations

import subprocess
import sys
import time

from tuner.engine.moments import TrialMoments
from tuner.engine.phases import Phases, process_start_time

COLLECTED = time.time()  # when pytest imported this module, before any test ran


def test_the_process_started_before_this_test_and_not_long_ago() -> None:
    started = process_start_time()
    assert started <= time.time()
    # Not long before collection: how long the suite has run since does not count.
    assert COLLECTED - started < 3600


def test_spans_and_moments_are_timed_from_the_origin_in_the_order_they_began() -> None:
    phases = Phases(origin=time.time())
    phases.mark("command started")
    with phases.phase("ray start"):
        time.sleep(0.05)
        phases.mark("inside")
    phases.mark("after")
    names = [row[0] for row in phases.table()]
    assert names == ["command started", "ray start", "inside", "after"]
    durations = phases.as_dict()
    assert 0.05 <= durations["ray start"] < 1.0
    assert durations["after"] >= durations["ray start"]


def test_a_phase_that_raises_is_still_recorded() -> None:
    phases = Phases(origin=time.time())
    try:
        with phases.phase("ray start"):
            raise RuntimeError("no Ray")
    except RuntimeError:
        pass
    assert [row[0] for row in phases.table()] == ["ray start"]


def test_the_first_result_marks_its_moment_and_calls_its_hook_once() -> None:
    phases = Phases()
    calls: list[str] = []
    moments = TrialMoments(phases, at_first_result=lambda: calls.append("imports"))
    for _ in range(3):
        moments.on_trial_result(iteration=1, trials=[], trial=None, result={})
    assert calls == ["imports"]
    assert [name for name, *_ in phases.table()].count("first result") == 1
    # Ray pickles callbacks into the experiment: the hook stays with this process.
    assert moments.__getstate__()["_at_first_result"] is None


def test_a_sweeps_driver_hands_ray_a_builtin_trainer_without_importing_torch() -> None:
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from tuner.engine.trainables import resolve_trainable\n"
            "resolve_trainable('builtin:classifier'); resolve_trainable('builtin:regressor')\n"
            "print('torch' in sys.modules, 'sklearn' in sys.modules)\n",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.split() == ["False", "False"]
