"""What a trainable raises, made something Ray can carry to the driver as the user wrote it.

Ray copies a trial's exception in the worker (`copy.copy`, to trim its own frames) and
pickles it to the driver. Both rebuild it as `type(exc)(*exc.args)`, so an exception
class whose `__init__` takes other arguments than it passes to `Exception.__init__`
(`MyError(code, detail)`, common in user code) fails there: the user saw a TypeError
from Python's copy module instead of their error. An exception holding something that
does not pickle (a lock, a connection) made Ray print 80 lines of its own traceback.
`sys.exit()` in a trainable either ended in Ray's "Should not have reached here" (code
0) or killed the worker ("The actor is dead ...") for any other code. A KeyboardInterrupt
raised in a trainable reached the user as Ray's TaskCancelledError.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tuner.engine.hidden_output import hidden

T = TypeVar("T")


class UserError(Exception):
    """A stand-in for an exception of user code that Ray could not carry, or that
    quoted a secret: its message is the original's line as Python prints it
    (`my_module.MyError: text`), its traceback the original's, so error.txt shows the
    user's file and line."""


class TrainableExit(Exception):
    """The trainable called `sys.exit(code)` with a code that says it failed."""


class RayStop(SystemExit):
    """Ray's own `sys.exit(0)` from `tune.report`, which ends the function of a trial it
    stops: it must reach Ray as it is (a return instead would leave the trial hanging)."""


def carried(call: Callable[..., T], *args: Any, secrets: Sequence[str] = ()) -> T:
    """`call(*args)`, raising what it raises in a form Ray carries to the driver intact.

    `sys.exit(0)` (or `sys.exit()`) ends the call as a return of None would: the code
    says the work is done. Another code fails the trial with a TrainableExit.
    `secrets`: the trial's secret values; an error that quotes one (an HTTP error with
    the token in its URL) reaches Ray with `<secret>` in its place, for Ray writes the
    error to storage and tuner its line to MLflow and the console."""
    try:
        return call(*args)
    except RayStop:
        raise
    except SystemExit as exc:
        if exc.code is None or exc.code == 0:  # what a script's normal end says
            return None  # type: ignore[return-value]
        failure = TrainableExit(f"the trainable called sys.exit({exc.code!r})")
        raise failure.with_traceback(exc.__traceback__) from None
    except KeyboardInterrupt as exc:
        # Ray's workers block SIGINT, so this is the user's code raising it (a library
        # that turns a signal or a "stop" into one). Ray reported it as a bare
        # "TaskCancelledError: Task ... was cancelled", as if Ray had stopped the trial.
        interrupted = UserError(hidden(_interrupted(exc), secrets))
        raise interrupted.with_traceback(exc.__traceback__) from None
    except Exception as exc:
        stand_in = _without_secrets(exc, secrets) or _stand_in(exc)
        if stand_in is None:
            raise
        raise stand_in.with_traceback(exc.__traceback__) from None


def _without_secrets(exc: BaseException, secrets: Sequence[str]) -> UserError | None:
    """A UserError with `exc`'s line and its chain's, each secret replaced, when any
    of them quotes one; else None. The chain is kept as notes: its messages may quote
    the secret too (`raise AuthError(...) from HTTPError(url)`)."""
    if not secrets:
        return None
    text = "".join(traceback.format_exception(exc))
    if not any(secret in text for secret in secrets):
        return None
    stand_in = UserError(hidden(_python_line(exc), secrets))
    cause = exc.__cause__ or exc.__context__
    for _ in range(8):  # chains are short; a cycle must not loop
        if cause is None:
            break
        stand_in.add_note(f"caused by {hidden(_python_line(cause), secrets)}")
        cause = cause.__cause__ or cause.__context__
    return stand_in


def _interrupted(exc: KeyboardInterrupt) -> str:
    """`KeyboardInterrupt raised in the trainable at /my/train.py:12 in load()`: the
    innermost frame, where the user's code (or a library it called) raised it."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = (
        f" at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}()" if frames else ""
    )
    message = str(exc)
    return f"KeyboardInterrupt raised in the trainable{where}" + (f": {message}" if message else "")


def _stand_in(exc: BaseException) -> UserError | None:
    """None when Ray can rebuild `exc` and each cause it keeps; else a UserError for it."""
    error: BaseException | None = exc
    depth = 0
    while error is not None and depth < 8:  # Ray copies each `__cause__` in turn
        if not _rebuilds(error):
            return UserError(_python_line(exc))
        error, depth = error.__cause__, depth + 1
    return None


def _rebuilds(error: BaseException) -> bool:
    from ray import cloudpickle

    try:
        cloudpickle.loads(cloudpickle.dumps(error))
    except Exception:  # any failure to pickle or rebuild: Ray would meet it too
        return False
    return True


def _python_line(exc: BaseException) -> str:
    """The exception's line as Python's traceback prints it: `module.Name: message`."""
    kind = type(exc)
    name = kind.__qualname__
    if kind.__module__ not in ("builtins", "__main__"):
        name = f"{kind.__module__}.{name}"
    try:
        message = str(exc)
    except Exception:  # a __str__ that fails: Python prints the type alone too
        message = ""
    return f"{name}: {message}" if message else name
