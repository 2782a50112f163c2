"""Names a sweep file gives that end up elsewhere: as MLflow keys, as Ray result keys.

MLflow refuses a param or metric key outside its character set, or one that is not a
normalized relative path; it would say so only when the run logs it, after the trials
ran. Ray fills some result keys itself, and tuner uses `epoch` as the MLflow step: a
sweep's metric by one of those names is never the user's number.
"""

from __future__ import annotations

import posixpath
import re

# MLflow's rule (mlflow.utils.validation) for param, metric and tag keys, on POSIX.
_MLFLOW_KEY = re.compile(r"[/\w.\- :]+")
MLFLOW_MAX_KEY_LENGTH = 250

# What Ray Tune adds to every result (ray.tune.result.AUTO_RESULT_KEYS, plus `done`,
# `trial_id` and `experiment_tag`) and the step tuner takes from `epoch`.
RESERVED_RESULT_KEYS = frozenset(
    {
        "training_iteration",
        "time_total_s",
        "episodes_total",
        "timesteps_total",
        "node_ip",
        "hostname",
        "pid",
        "time_this_iter_s",
        "timestamp",
        "date",
        "time_since_restore",
        "timesteps_since_restore",
        "iterations_since_restore",
        "config",
        "checkpoint_dir_name",
        "done",
        "trial_id",
        "experiment_tag",
        "epoch",
    }
)


def mlflow_key_problem(key: str) -> str | None:
    """Why MLflow would refuse `key` as a param or metric name; None if it takes it."""
    if len(key) > MLFLOW_MAX_KEY_LENGTH:
        return f"MLflow takes names of at most {MLFLOW_MAX_KEY_LENGTH} characters"
    if not _MLFLOW_KEY.fullmatch(key):
        return f"MLflow takes only letters, digits, spaces and _ - . / : in a name (got {key!r})"
    normal = posixpath.normpath(key)
    if normal != key or normal == "." or normal.startswith(("..", "/")):
        return f"MLflow needs a name that is a plain relative path (got {key!r})"
    return None


_PYTHON_NAME = r"[A-Za-z_]\w*"
TRAINABLE_PATTERN = rf"^(builtin:{_PYTHON_NAME}|{_PYTHON_NAME}(\.{_PYTHON_NAME})*:{_PYTHON_NAME})$"


def trainable_reference(value: object) -> object:
    """`trainable` as `package.module:function`, or why not in words rather than a regex.

    A user's first try is often the file they run (`src/train.py:fit`): Python imports
    a module by its dotted name, so the name to write is said."""
    if not isinstance(value, str) or re.fullmatch(TRAINABLE_PATTERN, value):
        return value
    module, colon, function = value.rpartition(":")
    if colon and re.fullmatch(_PYTHON_NAME, function) and module.endswith(".py"):
        raise ValueError(file_path_problem(module, function))
    raise ValueError(f"{value!r} is neither 'package.module:function' nor 'builtin:NAME'")


def file_path_problem(module: str, function: str) -> str:
    """What to write for a trainable named by its file, `src/train.py` -> `src.train`."""
    dotted = posixpath.normpath(module.replace("\\", "/")).removesuffix(".py")
    dotted = dotted.removeprefix("./").replace("/", ".")
    return (
        f"'{module}:{function}' names a file; name its module as Python imports it from "
        f"the folder you run tuner in: '{dotted}:{function}'"
    )


def logged_name_problem(name: str, logged_as: str) -> str | None:
    """Why MLflow would refuse `name` where tuner logs it as `logged_as` (`best.<param>`
    on the sweep's run, `hp.<mutation>`, `best_<metric>`), worded for the name the user
    wrote: a name that fits alone may not fit with tuner's prefix, and MLflow would refuse
    it only when the sweep records its best trial, after every trial ran."""
    # A trial's run logs the name itself too (its params, its metrics).
    problem = mlflow_key_problem(name) or mlflow_key_problem(logged_as)
    if problem is None or logged_as == name:
        return problem
    if len(logged_as) > MLFLOW_MAX_KEY_LENGTH:
        room = MLFLOW_MAX_KEY_LENGTH - (len(logged_as) - len(name))
        return (
            f"is {len(name)} characters; tuner logs it to MLflow as {logged_as[: -len(name)]!r} "
            f"+ name, so it may have at most {room}"
        )
    return problem.replace(repr(logged_as), repr(name))
