"""The terminal view of a running sweep: a live table of trials, or one line per trial.

Ray Tune's own reporter is silenced (verbose=0); this one knows which trials ASHA
stopped early and shows the sweep's own params and metric only.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ray.tune import Callback
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from tuner.search.early_stops import EarlyStops
from tuner.spec import SweepSpec
from tuner.spec.errors import printable
from tuner.tracking.results import (
    as_number,
    error_hint,
    error_summary,
    restart_reason,
    result_step,
)

MAX_ROWS = 20
# Ray's trial states in the words the summary and MLflow use.
STATUS_WORDS = {"TERMINATED": "finished", "ERROR": "failed"}
REFRESH_SECONDS = 0.5


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def shown(text: str) -> Text:
    """`text` as a terminal cell shows it, never as instructions: a choice value or an
    error is the user's (`[bold red]`, an escape sequence that retitles or clears the
    terminal). A plain string cell is Rich markup, and Rich passes ESC through."""
    return Text(printable(text))


def when_it_ended(last_result: dict[str, Any] | None) -> str:
    """When a trial failed or lost its worker, as far as its results tell: "after epoch
    N" names the last epoch it reported (it ended in a later one, so "at" would name the
    wrong one), "before its first result" when it reported none."""
    result = last_result or {}
    if not result.get("training_iteration"):
        return "before its first result"
    return f"after epoch {result_step(result)}"


def row_rank(score: float | None, mode: str) -> float:
    """Where a trial's row goes, lowest first: the best score first, then the rest;
    trials without a score (yet), or with NaN, last. The engine keeps the trials that
    rank among the MAX_ROWS first (tuner.engine.ended_trials)."""
    if score is None or math.isnan(score):
        return math.inf
    return -score if mode == "max" else score


class ProgressTable(Callback):  # type: ignore[misc]
    def __init__(
        self,
        spec: SweepSpec,
        early_stops: EarlyStops,
        console: Console,
        released: Callable[[], dict[str, int]] = dict,
    ) -> None:
        """`released`: counts, by status, of ended trials no longer among Ray's (the
        engine lets most go: tuner.engine.ended_trials); the title counts them too."""
        self._spec = spec
        self._released = released
        self._early_stops = early_stops
        self._console = console
        self._live: Live | None = None
        self._last_refresh = 0.0
        self._first_with: dict[str, str] = {}  # error line -> the first trial that failed so

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles callbacks with the experiment; a live display cannot travel.
        return {**self.__dict__, "_live": None, "_console": None}

    def _status(self, trial: Any) -> str:
        if trial.status == "TERMINATED" and trial.trial_id in self._early_stops:
            return "stopped (asha)"
        return STATUS_WORDS.get(trial.status, str(trial.status).lower())

    def _score(self, trial: Any) -> float | None:
        return as_number((trial.last_result or {}).get(self._spec.metric))

    def render(self, trials: list[Any]) -> Table:
        metric, mode = self._spec.metric, self._spec.mode
        scores = {t.trial_id: self._score(t) for t in trials}
        rank = {trial_id: row_rank(score, mode) for trial_id, score in scores.items()}
        best = min(trials, key=lambda t: rank[t.trial_id], default=None)
        if best is not None and rank[best.trial_id] == math.inf:
            best = None  # no score, or NaN: nothing to mark best
        counts = Counter(self._status(trial) for trial in trials)
        counts.update(self._released())
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if n)
        table = Table(
            title=shown(f"{self._spec.name}: {counts.total()} trials ({summary})"),
            title_justify="left",
        )
        for column in ["trial", "status", *self._spec.params, "epoch", metric]:
            table.add_column(shown(column), justify="right" if column != "status" else "left")
        # Running trials first, then the best scores: the rows a user watches.
        running = [t for t in trials if t.status == "RUNNING"]
        rest = sorted((t for t in trials if t.status != "RUNNING"), key=lambda t: rank[t.trial_id])
        for trial in (running + rest)[:MAX_ROWS]:
            result = trial.last_result or {}
            score = scores[trial.trial_id]
            cells = [
                trial.trial_id,
                self._status(trial),
                *(format_value(trial.config.get(name)) for name in self._spec.params),
                format_value(result_step(result) if "training_iteration" in result else None),
                ("* " if trial is best else "") + format_value(score),
            ]
            table.add_row(*map(shown, cells))
        return table

    def setup(
        self,
        stop: Any = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        if self._console.is_terminal:
            self._live = Live(console=self._console, auto_refresh=False, transient=False)
            self._live.start()

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        now = time.monotonic()
        if self._live is not None and now - self._last_refresh >= REFRESH_SECONDS:
            self._last_refresh = now
            self._live.update(self.render(trials), refresh=True)

    def _line(self, trial: Any) -> None:
        if self._live is not None:
            return
        params = " ".join(
            f"{n}={format_value(trial.config[n])}" for n in self._spec.params if n in trial.config
        )
        score = format_value(self._score(trial))
        epoch = format_value(result_step(trial.last_result) if trial.last_result else None)
        self._console.print(
            printable(
                f"trial {trial.trial_id} {self._status_after_end(trial)} at epoch {epoch}: "
                f"{self._spec.metric}={score} {params}"
            ),
            highlight=False,
            markup=False,
        )

    def _status_after_end(self, trial: Any) -> str:
        if trial.trial_id in self._early_stops:
            return "stopped early (asha)"
        if isinstance((trial.last_result or {}).get("stop_reason"), str):
            return "stopped itself (early stopping)"
        return "finished"

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._line(trial)

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        # Printed above a live table too: a lost node is news even when all goes on.
        checkpoint = "its last checkpoint" if trial.checkpoint else "the start"
        self._console.print(
            f"trial {trial.trial_id} lost its worker {when_it_ended(trial.last_result)} "
            f"({restart_reason(trial)}); restarting from {checkpoint}",
            highlight=False,
        )

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        # One line, above a live table too: Ray's traceback of it is off (it is mostly
        # Ray's own frames); the whole one stays in the trial's error file.
        error = error_summary(trial)
        first = self._first_with.setdefault(error, trial.trial_id)
        if first != trial.trial_id:  # said once is enough: a bug fails every trial alike
            line = f"the same error as trial {first}"
        else:
            hint = error_hint(error)
            line = error + (f" -- {hint}" if hint else "")
            # Where the experiment keeps it (Ray's staging copy is gone after the run).
            line += f" (traceback: {trial.path}/error.txt)" if trial.error_file else ""
        # The error is the user's text: escaped, so it cannot drive the terminal.
        self._console.print(
            printable(f"trial {trial.trial_id} failed {when_it_ended(trial.last_result)}: {line}"),
            highlight=False,
            markup=False,
        )

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        if self._live is not None:
            self._live.update(self.render(trials), refresh=True)
            self._live.stop()
            self._live = None
