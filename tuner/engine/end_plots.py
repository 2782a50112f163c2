"""The sweep's plots drawn into its MLflow run when it ends, while Ray shuts down.

Only for sweeps whose trials ran long enough that the few seconds of drawing are a small
part of them (`TUNER_PLOTS_AFTER_S`, default 60; 0 draws always); a shorter sweep's
summary says how to draw them. A plot that cannot be drawn never fails the sweep.
"""

from __future__ import annotations

import threading

from rich.console import Console

from tuner.engine.outcome import SweepResult
from tuner.tracking.plots_in_mlflow import AT_END_AFTER_FIT_S, seconds_setting

PLOTS_AFTER_ENV = "TUNER_PLOTS_AFTER_S"


def plots_after_s() -> float:
    """How long a sweep's trials must have run for its plots to be drawn at its end."""
    return seconds_setting(PLOTS_AFTER_ENV, AT_END_AFTER_FIT_S)


class EndPlots:
    def __init__(self, result: SweepResult, console: Console) -> None:
        self._result = result
        self._console = console
        self._thread: threading.Thread | None = None
        self._line = ""

    def start(self) -> None:
        """Begin drawing on a thread, or say how to draw them for a short sweep."""
        fit_s = self._result.phases.as_dict().get("fit", 0.0)
        if fit_s < plots_after_s():
            self._say(
                f"plots: `tuner report {self._result.name} --log` draws them into the "
                f"sweep's MLflow run (a sweep under {plots_after_s():g} s ends without)"
            )
            return
        self._thread = threading.Thread(target=self._draw, name="tuner-plots", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._say(self._line)

    def _draw(self) -> None:
        from mlflow import MlflowClient

        from tuner.tracking.plots_in_mlflow import log_plots

        result = self._result
        try:
            count, where = log_plots(
                MlflowClient(result.tracking_uri), result.experiment_id, result.parent_run_id
            )
        except Exception as exc:  # pictures are a bonus: the sweep's results stand
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._line = f"warning: the sweep's plots were not drawn: {first}"
            return
        self._line = f"plots: {count} in the sweep's MLflow run, {where}"

    def _say(self, line: str) -> None:
        self._console.print(line, markup=False, highlight=False)
