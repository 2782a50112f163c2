"""What a Tune result and a trial say in the tracking store's terms.

A result's points and step, a param's logged text, why a trial restarted or failed.
"""

from __future__ import annotations

import functools
import logging
import math
import numbers
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle

from tuner.spec.names import mlflow_key_problem

if TYPE_CHECKING:
    from ray.exceptions import RayActorError

logger = logging.getLogger(__name__)


@functools.cache
def _not_metrics() -> frozenset[str]:
    """Ray's bookkeeping keys, not the user's metrics; "epoch" is the step, not a
    metric. Asked of Ray on first use: the commands that read a sweep back import this
    module, and need no Ray (0.7 s of imports)."""
    from ray.tune.result import AUTO_RESULT_KEYS

    return frozenset(AUTO_RESULT_KEYS) | {"epoch", "done", "trial_id", "experiment_tag"}


def as_number(value: Any) -> float | None:
    """A reported value as a float when it is one number, else None.

    User code reports what its libraries return: numpy scalars (`np.mean`, sklearn's
    metrics), numpy arrays and torch tensors of one value (`loss` without `.item()`,
    `torch.tensor([x])`), `Decimal`s. Each is a number to the user, so each is one here;
    duck-typed, so the driver imports no torch for it. Booleans are flags, not metrics.
    """
    if isinstance(value, bool | str | bytes):
        return None
    if isinstance(value, numbers.Real):  # int, float, Fraction and numpy's scalars
        return float(value)
    if isinstance(value, numbers.Number) and not isinstance(value, numbers.Complex):
        try:  # Decimal: a Number, not a Real, and float() takes it (NaN included)
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):  # a signalling NaN
            return None
    shape = getattr(value, "shape", None)  # torch.Size is a tuple too
    if isinstance(shape, tuple) and math.prod(shape) == 1 and hasattr(value, "item"):
        item = value.item()
        if not isinstance(item, bool) and isinstance(item, numbers.Real):
            return float(item)
    return None


def metric_points(result: dict[str, Any]) -> dict[str, float]:
    """The user's numeric metrics in a Tune result."""
    points = {}
    not_metrics = _not_metrics()
    for key, value in result.items():
        number = None if key in not_metrics else as_number(value)
        if number is not None:
            points[key] = number
    return points


def loggable_points(points: dict[str, float], refused: dict[str, str]) -> dict[str, float]:
    """`points` without the names MLflow refuses (over 250 characters, `acc@1`, `f1(macro)`).

    MLflow refuses a whole `log_batch` for one such name: every metric of the trial's
    results would be lost, and the sweep would end in error. Each refused name is
    warned about once (`refused` keeps them, name -> why) and left out; Ray, its
    scheduler and the stop rules still see it.
    """
    kept = {}
    for key, value in points.items():
        if key in refused:
            continue
        problem = _mlflow_refuses(key)
        if problem is None:
            kept[key] = value
            continue
        refused[key] = problem
        shown = key if len(key) <= 80 else f"{key[:60]}... ({len(key)} characters)"
        logger.warning("metric %r is not logged to MLflow: %s", shown, problem)
    return kept


@functools.lru_cache(maxsize=8192)
def _mlflow_refuses(key: str) -> str | None:
    # Cached: a trial reports the same names every epoch, maybe a thousand of them.
    return mlflow_key_problem(key)


def result_step(result: dict[str, Any]) -> int:
    """The MLflow step of a result: the trainable's epoch, else Tune's iteration count.

    An `epoch` that is no number (a label such as "3/10") leaves the step to Tune.
    """
    epoch = as_number(result.get("epoch"))
    if epoch is not None:
        return int(epoch)
    return int(as_number(result.get("training_iteration")) or 0)


def param_value(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def restart_reason(trial: Any) -> str:
    """Why a trial is restarting: its node was preempted (drained), lost, or it raised."""
    try:
        with open(trial.pickled_error_file, "rb") as file:
            error = cloudpickle.load(file)
    except Exception:  # no readable error: say what we know
        return "error"
    lost = lost_worker(error)
    if lost is None:
        return "error"
    return "preempted" if lost.preempted else "node lost"


def lost_worker(error: BaseException) -> RayActorError | None:
    """The death of a worker behind `error`, if one caused it: the error itself for a
    one-process trial, one of its workers' inside Ray Train's for a multi-worker one."""
    from ray.exceptions import RayActorError

    return next((e for e in errors_within(error) if isinstance(e, RayActorError)), None)


def errors_within(error: BaseException, depth: int = 0) -> Iterator[BaseException]:
    """`error` and the errors it wraps, depth first.

    A multi-worker trial's driver raises Ray Train's WorkerGroupError, which keeps each
    failed worker's error by rank (`worker_failures`), a lost one wrapped as a failed
    health check (`health_check_failure`); a task's error wraps its cause."""
    from ray.exceptions import RayTaskError

    if isinstance(error, RayTaskError):
        error = error.as_instanceof_cause()
    yield error
    if depth >= 4:  # wrappers go a few levels deep; a cycle must not loop
        return
    failures = getattr(error, "worker_failures", None)
    inner = list(failures.values()) if isinstance(failures, dict) else []
    inner += [getattr(error, "health_check_failure", None), error.__cause__]
    for cause in inner:
        if isinstance(cause, BaseException):
            yield from errors_within(cause, depth + 1)


def error_summary(trial: Any) -> str:
    """Last line of the trial's traceback: the exception, which is what a user needs first."""
    text = ""
    try:
        # Ray writes the error to the driver's staging folder first and syncs it to
        # storage later, so at this moment only the local file is certain to exist.
        if trial.error_file and Path(trial.error_file).is_file():
            text = Path(trial.error_file).read_text(errors="replace")
    except OSError:  # unreadable: the run's FAILED status still says what matters
        logger.debug("could not read error of trial %s", trial.trial_id, exc_info=True)
    lines = [line for line in str(text).splitlines() if line.strip()]
    # tuner's own errors about user code read as Python's do: "MetricNotReported: ...",
    # and a stand-in for the user's own exception as that exception.
    line = _exception_line(lines) if lines else "trial failed"
    return _TUNER_MODULE.sub("", _STAND_IN.sub("", line))[:5000]


def _exception_line(lines: list[str]) -> str:
    """The first line of the exception the traceback ends with: `ValueError: text`.

    A message may run over several lines; its last ("third") would say neither what
    was raised nor what the first line says. The exception starts at the first line
    after the last frame (`  File "..."` and its indented source lines)."""
    frames = [i for i, line in enumerate(lines) if line.startswith('  File "')]
    if not frames:
        return lines[-1]
    after = frames[-1] + 1
    while after < len(lines) and lines[after].startswith(" "):
        after += 1
    return lines[after] if after < len(lines) else lines[-1]


_TUNER_MODULE = re.compile(r"^tuner(?:\.\w+)+\.(?=\w+: )")
# tuner.engine.user_errors.UserError carries an exception Ray could not: "module.Name: text".
_STAND_IN = re.compile(r"^tuner\.engine\.user_errors\.UserError: ")


def error_hint(error: str) -> str | None:
    """What to do about an error that comes from how the trainable uses Ray, if known."""
    if "ray.train." in error:
        # Ray's own message says "deprecated": the call fails every time inside Tune.
        return (
            "inside a tuner trainable use ray.tune.report / ray.tune.get_checkpoint / "
            "ray.tune.Checkpoint, not ray.train.*"
        )
    if _REPORT_SIGNATURE.match(error):
        # Ray 1's `tune.report(loss=x)`, still in many blog posts and older examples.
        return "ray.tune.report takes one dict of metrics: ray.tune.report({'loss': value})"
    if _RELATIVE_MISSING.match(error):
        # Ray Tune runs each trial in a folder of its own: a path relative to where
        # `tuner run` started names a file that is not there.
        return (
            "each trial runs in its own working directory, not the one tuner was started "
            "in: open the file by its absolute path (given in the sweep's config, say)"
        )
    return None


_REPORT_SIGNATURE = re.compile(
    r"^TypeError: report\(\) (?:got an unexpected keyword argument|missing 1 required)"
)
# "FileNotFoundError: [Errno 2] No such file or directory: 'data/train.csv'", not '/...'.
_RELATIVE_MISSING = re.compile(r"^FileNotFoundError: \[Errno 2\] [^:]*: '(?![/~])")


def run_name(trial_id: str, params: dict[str, str]) -> str:
    """What the runs table shows: the trial id and its first two searched values (the
    sweep file's order), e.g. `5fb07bec lr=0.0014 hidden=27`."""
    shown = [f"{name}={_short(value)}" for name, value in list(params.items())[:2]]
    return " ".join([trial_id, *shown])


def _short(logged: str) -> str:
    try:
        number = float(logged)
    except ValueError:
        return logged[:24]
    return logged if number.is_integer() and "." not in logged else f"{number:.4g}"
