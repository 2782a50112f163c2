"""User trainables as their authors wrote them: what runs around them in the Ray worker.

Training code reports what its libraries hand back: `np.mean(...)` is a numpy scalar,
a loss without `.item()` a 0-d torch tensor. Ray refuses a torch tensor in a result (it
may not unpickle on the driver: a CUDA tensor on a CPU head) and the driver would see a
numpy value as something other than a number. The wrapper here turns every single-number
value into a float in the worker, before Ray sees the result.

A result without the sweep's metric fails its trial here (a class Trainable's too),
naming the keys it did report: Ray would end the whole sweep with a traceback instead.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from tuner.engine.checkpoint_links import SavesLinksIn, reporting
from tuner.engine.own_mlflow import OwnMlflow
from tuner.engine.quiet_arrival import QuietArrival
from tuner.engine.report_calls import check_call
from tuner.engine.reported_values import plain_numbers
from tuner.engine.script_args import ByName, imported_first
from tuner.engine.trial_config import TrialConfig
from tuner.engine.user_errors import RayStop, carried
from tuner.tracking.results import as_number

# What Ray calls: a function of the config; what it returns Ray reports too.
UserFunction = Callable[[dict[str, Any]], Any]


class MetricNotReported(ValueError):
    """A trial's result lacks the sweep's metric: the trial fails with this one line."""


def reported_keys(metrics: dict[str, Any], prefix: str = "") -> list[str]:
    """Every key of a result as Ray flattens it: `{"val": {"loss": 1}}` has "val/loss"."""
    keys = []
    for key, value in metrics.items():
        if isinstance(value, dict) and value:
            keys += reported_keys(value, f"{prefix}{key}/")
        else:
            keys.append(f"{prefix}{key}")
    return keys


# How user code reports, as the error that it did not says it.
TUNE_REPORT = "ray.tune.report({{{metric}: value}})"
WORKER_REPORT = "ray.train.report({{{metric}: value}}) on every worker"


# The metrics every result must hold: the sweep's metric, or each of its objectives.
Required = str | tuple[str, ...]


def _names(metric: Required) -> tuple[str, ...]:
    return (metric,) if isinstance(metric, str) else metric


def _example(metric: Required) -> str:
    """`'acc': value, 'latency'`: the inside of the dict a report should hold."""
    return ": value, ".join(repr(name) for name in _names(metric))


def check_metric(metrics: dict[str, Any], metric: Required) -> None:
    """Raise MetricNotReported when `metrics` lacks `metric` (or one of several),
    naming what it has, or when its value is not one number (NaN and infinity are
    numbers). A result without one objective of several left its trial out of the
    Pareto front without a word, the best on the first objective included."""
    keys = reported_keys(metrics)
    for name in _names(metric):
        if name not in keys:
            shown = ", ".join(sorted(keys)) or "nothing"
            raise MetricNotReported(
                f"a result without the sweep's metric {name!r} (it reported: {shown})"
            )
        # A string or None would reach the driver's scheduler and searcher, which do
        # arithmetic on it: ASHA raised in the driver, ending the whole sweep with a
        # traceback and leaving its trials RUNNING in MLflow.
        value = plain_numbers(metrics)[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MetricNotReported(
                f"the sweep's metric {name!r} must be a number; a result has {_kind(value)}"
            )


def _kind(value: Any) -> str:
    if value is None:
        return "None"
    shown = repr(value)
    shown = shown if len(shown) <= 40 else f"{shown[:37]}..."
    return f"a {type(value).__name__} ({shown})"


def _session() -> Any:
    """The trial's Ray session in this worker, or None outside a trial. `ray.tune.report`
    (however it was imported) ends in the session's `report`: the one place to see every
    result of a function trainable, and every checkpoint it hands Ray to copy."""
    try:
        from ray.train._internal.session import get_session
    except ImportError:  # another Ray layout: results go to Ray untouched
        return None
    return get_session()


def user_function(
    fn: UserFunction,
    metric: Required,
    trial_config: TrialConfig | None = None,
    report_call: str = TUNE_REPORT,
) -> UserFunction:
    """`fn` run with each `tune.report` it makes checked for `metric` and turned into
    plain numbers first. What `fn` returns Ray reports too (a dict, or a number as
    Ray's "_metric"): it is held to the same rule. `trial_config` puts the sweep's
    secrets back into the config `fn` receives. `report_call`: what the user's code
    calls to report, named when it reported nothing (a multi-worker trial's workers
    call WORKER_REPORT)."""
    if inspect.isgeneratorfunction(fn):
        # Ray drives a generator itself: the wrapper is one too, so Ray sees it as one.
        return _checked_generator(fn, metric, trial_config)
    arrival = _Arrival(fn, trial_config)

    @_wraps(fn)
    def trainable(config: dict[str, Any]) -> Any:
        fn, config, secrets = arrival.start(config)
        session = _session()
        if session is None:
            return fn(config)
        report = session.report
        contained = reporting(report, session.trial_id)  # no link followed out of a checkpoint
        # A trial started from a checkpoint of its end (restarted after its last report,
        # or given another trial's final checkpoint by PBT) has nothing left to report.
        from ray import tune

        reported = tune.get_checkpoint() is not None
        example = _example(metric)

        def checked_report(metrics: dict[str, Any], checkpoint: Any = None) -> None:
            nonlocal reported
            check_call(metrics, checkpoint, call=report_call.split("(")[0], example=example)
            check_metric(metrics, metric)
            reported = True
            own_mlflow.note_report()
            try:
                contained(plain_numbers(metrics), checkpoint=checkpoint)
            except SystemExit as exc:
                # Ray ends the function of a trial it stops (ASHA, a stop rule, the
                # sweep's end) with sys.exit(0) inside report: its exit, not the user's.
                raise RayStop(exc.code) from None

        # On this session object only: it lives as long as this trial.
        session.report = checked_report
        own_mlflow = OwnMlflow(session if report_call == TUNE_REPORT else None)
        try:
            output = carried(fn, config, secrets=secrets)
        finally:
            session.report = report
            own_mlflow.finish()
        return _checked_output(output, metric, reported=reported, report_call=report_call)

    return trainable


class _Arrival:
    """What a wrapper of a user's function carries (pickled) to its Ray worker."""

    def __init__(self, fn: UserFunction, trial_config: TrialConfig | None) -> None:
        self.held = ByName(fn)  # imported in the worker as a script without arguments
        self.quiet = QuietArrival()  # unpickled in a worker before Ray restores a trial there
        self.trial_config = trial_config

    def start(self, config: dict[str, Any]) -> tuple[UserFunction, dict[str, Any], list[str]]:
        """(the user's function, the config it receives with the sweep's secrets back in,
        those secrets' values, kept out of its errors), with the worker's Ray loggers quiet."""
        self.quiet.now()
        if self.trial_config is None:
            return self.held.fn, config, []
        secrets = self.trial_config.secrets(config)
        return self.held.fn, self.trial_config(config), secrets


def _wraps(fn: UserFunction) -> Callable[[UserFunction], UserFunction]:
    """functools.wraps without `__wrapped__`: cloudpickle would send the user's function
    by reference through it, imported in the worker with Ray's command line."""

    def wrap(wrapper: UserFunction) -> UserFunction:
        functools.update_wrapper(wrapper, fn)
        del wrapper.__wrapped__  # type: ignore[attr-defined]
        return wrapper

    return wrap


def _checked_generator(
    fn: UserFunction, metric: Required, trial_config: TrialConfig | None
) -> UserFunction:
    """A generator trainable whose yielded results are held to the rules of reported
    ones: unchecked, one without the metric (or with a string) ended the whole sweep
    with a traceback from Ray's driver, and one that yielded nothing ran to FINISHED
    with an empty result (Ray's "Last result: " line on the terminal)."""

    arrival = _Arrival(fn, trial_config)

    @_wraps(fn)
    def trainable(config: dict[str, Any]) -> Any:
        fn, config, secrets = arrival.start(config)
        from ray import tune

        # As for a function: a trial started from a checkpoint of its end may be done.
        yielded = _session() is None or tune.get_checkpoint() is not None
        results = fn(config)
        while True:
            # Each step runs as a function does: what it raises (a KeyboardInterrupt, an
            # error quoting a secret, sys.exit) reaches the user as it does from one.
            output = carried(next, results, None, secrets=secrets)
            if inspect.getgeneratorstate(results) == inspect.GEN_CLOSED:
                break  # returned, or sys.exit(0)
            if isinstance(output, dict):
                check_metric(output, metric)
                output = plain_numbers(output)
                yielded = True  # Ray reports a dict; it skips None
            elif not isinstance(output, bool) and as_number(output) is not None:
                raise MetricNotReported(
                    f"the trainable yielded a {type(output).__name__}, not a dict with "
                    f"the sweep's metric: yield {{{_example(metric)}: value}} once per epoch"
                )
            yield output
        if not yielded:
            raise MetricNotReported(
                f"the trainable yielded no result: yield {{{_example(metric)}: value}} "
                "once per epoch"
            )

    return trainable


def _checked_output(
    output: Any, metric: Required, *, reported: bool, report_call: str = TUNE_REPORT
) -> Any:
    if isinstance(output, dict) and output:
        check_metric(output, metric)
        return plain_numbers(output)
    if output is not None and not isinstance(output, bool) and as_number(output) is not None:
        raise MetricNotReported(
            f"the trainable returned a {type(output).__name__} instead of reporting the "
            "sweep's metric: "
            f"call {report_call.format(metric=_example(metric))} once per epoch"
        )
    if not reported:
        raise MetricNotReported(
            "the trainable reported no result: "
            f"call {report_call.format(metric=_example(metric))} once per epoch"
        )
    return output


def user_class(
    cls: type[Any], metric: Required, trial_config: TrialConfig | None = None
) -> type[Any]:
    """A `tune.Trainable` subclass whose `step()` results are checked for `metric` and
    made plain numbers, under the user's class name (Ray names trials after it).
    `trial_config` puts the sweep's secrets back into what `setup()` and
    `reset_config()` receive (`self.config` keeps Ray's copy, without them)."""

    class Checked(imported_first(cls), SavesLinksIn, cls):  # type: ignore[misc,valid-type]
        __secrets: tuple[str, ...] = ()  # the trial's secret values, kept out of its errors
        __setup_error: Exception | None = None  # what the user's setup() raised, held
        # Unpickled in a worker with the class, before Ray restores a trial there.
        __quiet = QuietArrival()

        def setup(self, config: dict[str, Any]) -> Any:
            self.__quiet.now()
            self.__setup_error = None
            try:
                if trial_config is None:
                    return carried(super().setup, config)
                self.__secrets = tuple(trial_config.secrets(config))
                return carried(super().setup, trial_config(config), secrets=self.__secrets)
            except Exception as exc:
                # Raised here, inside Ray's actor creation, the worker printed its whole
                # traceback (~30 lines) to the user's terminal. Raised from the first
                # step() instead, it reaches the driver as a function's error does: the
                # trial fails with one line, its traceback (setup's frames) in error.txt.
                self.__setup_error = exc
                return None

        def __raise_setup_error(self) -> None:  # mangled, as the attributes: no user name taken
            if self.__setup_error is not None:
                raise self.__setup_error

        def load_checkpoint(self, checkpoint: Any) -> Any:
            self.__raise_setup_error()  # not an AttributeError of the half-built object instead
            return super().load_checkpoint(checkpoint)

        def cleanup(self) -> Any:
            if self.__setup_error is None:  # a failed setup() has nothing to clean up
                return super().cleanup()
            return None

        def reset_config(self, new_config: dict[str, Any]) -> Any:
            config = new_config
            if trial_config is not None:
                self.__secrets = tuple(trial_config.secrets(new_config))
                config = trial_config(new_config)
            if carried(super().reset_config, config, secrets=self.__secrets):
                return True
            # False asks Ray for a fresh worker, but Ray 2.60 then leaves the trial
            # PENDING for ever and the sweep never ends: set the trial up afresh on
            # this worker instead, as a fresh one would (cleanup, then setup).
            carried(self.cleanup, secrets=self.__secrets)
            self.setup(new_config)
            return True

        def step(self) -> Any:
            self.__raise_setup_error()
            result = carried(super().step, secrets=self.__secrets)
            if not isinstance(result, dict):
                raise MetricNotReported(
                    f"step() returned {type(result).__name__}, not a dict with the "
                    f"sweep's metric: return {{{_example(metric)}: value}}"
                )
            check_metric(result, metric)
            return plain_numbers(result)

    # Only the name: with the user's module and qualname, cloudpickle would send the
    # user's class by reference and the workers would run it unchecked.
    Checked.__name__ = cls.__name__
    return Checked


def reuses_actors(trainable: Any) -> bool:
    """Whether a trial may take over a finished trial's worker: a function always; a
    class only when it implements `reset_config` (else Ray fails the trial on reuse)."""
    from ray import tune

    if isinstance(trainable, type) and issubclass(trainable, tune.Trainable):
        return trainable.reset_config is not tune.Trainable.reset_config
    return True


def saves_checkpoints(trainable: Any) -> bool:
    """Whether Ray may checkpoint a trial when it ends: a class must implement
    `save_checkpoint` (Ray's own raises NotImplementedError, failing a finished trial)."""
    from ray import tune

    if isinstance(trainable, type) and issubclass(trainable, tune.Trainable):
        return trainable.save_checkpoint is not tune.Trainable.save_checkpoint
    return True
