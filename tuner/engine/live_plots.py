"""A long sweep's plots refreshed in its MLflow run while it runs, so that a user
following a cluster sweep in MLflow sees how the search goes without running anything.

Every `TUNER_PLOTS_EVERY_S` seconds (default 600; 0 never), or less often when drawing
takes long (a long sweep), a child process reads the sweep back from MLflow and logs
its report under `plots/`, as `tuner report --log` does (tuner.tracking.plots_process:
the draw's memory and CPU are not the driver's). Trials keep running meanwhile;
a report that cannot be drawn yet (no trial has reported an epoch) is skipped quietly
and tried again at the next interval; until a trial finishes it has the learning curves.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from tuner.tracking.plots_in_mlflow import seconds_setting

PLOTS_EVERY_ENV = "TUNER_PLOTS_EVERY_S"
PLOTS_EVERY_S = 600.0
# A draw reads every trial back from MLflow and plots them: at 6,000 trials minutes of a
# core and of the tracking server, which the trials share. Waiting at least 19 times as
# long as the last draw took keeps drawing under 5% of the time however long the sweep
# grows, as Ray paces its experiment snapshots.
WAIT_PER_DRAW_S = 19.0
logger = logging.getLogger(__name__)


def plots_every_s() -> float:
    return seconds_setting(PLOTS_EVERY_ENV, PLOTS_EVERY_S)


class LivePlots:
    """`with LivePlots(...)` around the fit: redraws the plots every interval."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str) -> None:
        self._ids = (tracking_uri, experiment_id, parent_run_id)
        self._every_s = plots_every_s()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.drawn = 0

    def __enter__(self) -> LivePlots:
        if self._every_s > 0:
            self._thread = threading.Thread(target=self._loop, name="tuner-live-plots", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()  # a draw under way finishes: its files are not left half-logged

    def _loop(self) -> None:
        from tuner.tracking.plots_process import draw_in_child

        wait = self._every_s
        while not self._stop.wait(wait):
            drawn = draw_in_child(*self._ids)
            if drawn.ok:
                self.drawn += 1
            else:  # nothing to draw yet, or MLflow busy: next time
                logger.debug("plots not refreshed: %s", drawn.error)
            # Paced by the drawing itself, which grows with the sweep, not by the child's
            # start and imports (seconds, whatever the sweep's size). A report with no
            # plot yet (no epoch reported) cost little: the next comes at the interval.
            wait = max(self._every_s, WAIT_PER_DRAW_S * drawn.seconds * bool(drawn.plots))
