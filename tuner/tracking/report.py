"""A sweep's report: the pictures users look at after a sweep, drawn by Optuna's
visualization module (matplotlib) from the sweep read back out of MLflow, and one
self-contained report.html (the pictures inline, no remote URL: it opens offline).

    optimization_history.png   best so far against trials
    learning_curves.png        every trial's metric by epoch, ASHA's rungs marked
    parallel_coordinate.png    the searched params, coloured by the metric
    param_importances.png      fANOVA importances (an ASHA sweep: at its first rung)
    contour.png                the two most important params
    pareto_front.png           several objectives: every finished feasible trial, the
                               front highlighted
"""

from __future__ import annotations

import base64
import copy
import html
import json
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from tuner.search.promotion import rung_epochs
from tuner.spec import AshaScheduler
from tuner.spec.errors import printable
from tuner.tracking.big_sweeps import (
    LEGEND_ENTRIES,
    curves_drawn,
    importance_evaluator,
    judged_on_sample,
    known_importances,
)
from tuner.tracking.study import ENDED, SweepStudy

logger = logging.getLogger(__name__)
DPI = 110
FRONT_ROWS = 50  # a front's trials shown in report.html; its plot shows them all
# Optuna's states in tuner's words, as the end-of-sweep summary and `tuner status` say them.
ENDS = {
    optuna.trial.TrialState.COMPLETE: "finished",
    optuna.trial.TrialState.PRUNED: "stopped early",
    optuna.trial.TrialState.FAIL: "failed",
    optuna.trial.TrialState.RUNNING: "running",
    optuna.trial.TrialState.WAITING: "waiting",
}


@dataclass
class Report:
    folder: Path
    plots: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # plot -> why it is not drawn
    importances: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # plot -> what it shows of a big sweep

    @property
    def html(self) -> Path:
        return self.folder / "report.html"


def write_report(sweep: SweepStudy, folder: Path) -> Report:
    """Every plot the sweep's trials allow, importances.json and report.html in `folder`."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from matplotlib import pyplot

    folder.mkdir(parents=True, exist_ok=True)
    report = Report(folder)
    study = sweep.study
    finished = study.get_trials(states=[optuna.trial.TrialState.COMPLETE], deepcopy=False)
    every = _importance_study(sweep)
    judged = judged_on_sample(every)
    if judged is not every:
        report.notes["param_importances"] = (
            f"judged on {_count(judged)} of {_count(every)} trials, chosen at random"
        )
    report.importances = _importances(judged)
    known = known_importances(report.importances)
    ranked = sorted(report.importances, key=report.importances.__getitem__, reverse=True)
    from optuna.visualization import matplotlib as plots

    drawings: dict[str, Callable[[], Any]] = {
        "optimization_history": lambda: plots.plot_optimization_history(study),
        "learning_curves": lambda: _learning_curves(sweep, plots, report.notes),
        "parallel_coordinate": lambda: plots.plot_parallel_coordinate(study),
        "param_importances": lambda: plots.plot_param_importances(judged, evaluator=known),
        "contour": lambda: plots.plot_contour(every, params=ranked[:2]),
    }
    front = sweep.front
    if front is not None:
        names = [objective.metric for objective in sweep.spec.objective_list]
        drawings["pareto_front"] = lambda: plots.plot_pareto_front(front, target_names=names)
    for name, draw in drawings.items():
        why = _cannot_draw(name, sweep, finished, ranked, front)
        if why:
            report.skipped[name] = why
            continue
        try:
            # Labels are the user's values: a choice "$x^2$" was drawn as TeX, and one
            # matplotlib cannot parse ("$\\alpha_$") cost the plots that label it.
            with warnings.catch_warnings(), matplotlib.rc_context({"text.parse_math": False}):
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                axes = draw()
                figure = _figure_of(axes)
                figure.set_size_inches(9, 5.5)
                path = folder / f"{name}.png"
                figure.savefig(path, dpi=DPI, bbox_inches="tight")
            pyplot.close(figure)
            report.plots[name] = path
        except Exception as exc:  # one plot's failure must not cost the others
            # One line: the text may quote a user's value, escape sequences and all.
            report.skipped[name] = printable(f"{type(exc).__name__}: {exc}")
            logger.warning("plot %s not drawn: %s", name, report.skipped[name])
    (folder / "importances.json").write_text(json.dumps(report.importances, indent=2))
    report.html.write_text(_html(sweep, report, finished))
    return report


def _cannot_draw(
    name: str,
    sweep: SweepStudy,
    finished: list[Any],
    ranked: list[str],
    front: optuna.Study | None,
) -> str | None:
    if name == "pareto_front" and front is not None and not _count(front):
        return "no trial has finished feasible with every objective"
    if name == "learning_curves":
        # A curve needs epochs, not an end: an interrupted or diverged trial has one.
        if any(t.intermediate_values for t in sweep.study.get_trials(deepcopy=False)):
            return None
        return "no trial has reported an epoch yet"
    if name in ("param_importances", "contour") and ranked:
        # Judged on the trials' values at ASHA's first rung: no trial need have finished.
        return "needs two searched params" if name == "contour" and len(ranked) < 2 else None
    if not finished and sweep.running:
        return "no trial has finished yet"
    if not finished:
        return f"no trial finished with a value of {sweep.spec.metric}"
    if name == "parallel_coordinate" and len(finished) < 2:
        return "needs two finished trials"
    if name == "param_importances" and not ranked:
        return "needs two finished trials with a finite value and a searched param"
    if name == "contour" and len(ranked) < 2:
        return "needs two searched params"
    return None


def _importance_study(sweep: SweepStudy) -> optuna.Study:
    """The trials importances are judged on. In an ASHA sweep the few trials that finish
    are all good ones, so their differences say little (a param that does not matter came
    out first); every trial reached the first rung, so each counts with its value there."""
    scheduler = sweep.spec.scheduler
    if not isinstance(scheduler, AshaScheduler):
        return sweep.study
    rung = rung_epochs(scheduler.grace_period, scheduler.max_t, scheduler.reduction_factor)[0]
    judged = optuna.create_study(directions=sweep.study.directions)
    for trial in sweep.study.get_trials(deepcopy=False):
        value = trial.intermediate_values.get(rung)
        if value is not None and trial.params:
            judged.add_trial(
                optuna.trial.create_trial(
                    value=value, params=trial.params, distributions=trial.distributions
                )
            )
    return judged


def _importances(study: optuna.Study) -> dict[str, float]:
    every = study.get_trials(states=[optuna.trial.TrialState.COMPLETE], deepcopy=False)
    # An infinite value (a loss that overflowed) fails fANOVA's forests with a bare
    # AssertionError, which cost the importances of every other trial.
    finished = [t for t in every if t.value is not None and math.isfinite(t.value)]
    if len(finished) < 2 or not finished[0].distributions:
        return {}
    if len(finished) < len(every):
        study = optuna.create_study(directions=study.directions)
        study.add_trials(finished)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = importance_evaluator()
            return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
    except Exception as exc:  # e.g. every finished trial scored the same
        logger.warning("importances not computed: %s", printable(f"{type(exc).__name__}: {exc}"))
        return {}


def _learning_curves(sweep: SweepStudy, plots: Any, notes: dict[str, str]) -> Any:
    drawn, which = curves_drawn(sweep.study)
    axes = plots.plot_intermediate_values(_every_curve(drawn))
    if len(axes.get_lines()) > LEGEND_ENTRIES and axes.get_legend() is not None:
        axes.get_legend().remove()  # past a few trials, a list of names no one reads
    if which:
        axes.set_title(f"{axes.get_title()} ({which})")
        notes["learning_curves"] = which
    scheduler = sweep.spec.scheduler
    if isinstance(scheduler, AshaScheduler):
        rungs = rung_epochs(scheduler.grace_period, scheduler.max_t, scheduler.reduction_factor)
        for epoch in rungs:
            axes.axvline(epoch, color="grey", linestyle=":", linewidth=1)
        axes.set_title(f"{axes.get_title()} (dotted: ASHA's rungs)")
    axes.set_xlabel("epoch")
    axes.set_ylabel(sweep.spec.metric)
    return axes


def _every_curve(study: optuna.Study) -> optuna.Study:
    """`study` with its failed trials' curves drawn too: Optuna's plot leaves failed
    trials out, and a trial cut off by a Ctrl-C or that diverged has epochs worth seeing
    (it is drawn as a pruned one: the plot draws every state alike)."""
    trials = study.get_trials(deepcopy=False)
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    if not any(t.intermediate_values for t in failed):
        return study
    drawn = optuna.create_study(directions=study.directions)
    for trial in trials:
        if trial.state == optuna.trial.TrialState.FAIL and trial.intermediate_values:
            trial = copy.copy(trial)
            trial.state = optuna.trial.TrialState.PRUNED
        drawn.add_trial(trial)
    return drawn


def _figure_of(axes: Any) -> Any:
    """Optuna returns an Axes, or an array of them for multi-panel plots."""
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    return first.get_figure()


def _count(study: optuna.Study) -> int:
    """How many trials `study` holds. Not `len(study.trials)`, which deep-copies every
    trial: 0.4 s a call at 10,000 trials."""
    return len(study.get_trials(deepcopy=False))


def _html(sweep: SweepStudy, report: Report, finished: list[Any]) -> str:
    spec, study = sweep.spec, sweep.study
    states: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        state = trial.user_attrs.get(ENDED) or ENDS[trial.state]
        states[state] = states.get(state, 0) + 1
    if sweep.running:
        states["running"] = sweep.running
    counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    heading, table = _best_table(sweep, finished)
    objectives = ", ".join(f"{o.metric} ({o.mode})" for o in spec.objective_list)
    importances = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{value:.3f}</td></tr>"
        for name, value in sorted(report.importances.items(), key=lambda kv: -kv[1])
    )
    figures = "".join(
        f"<figure><img alt='{name}' src='data:image/png;base64,"
        f"{base64.b64encode(path.read_bytes()).decode()}'><figcaption>{name}"
        f"{html.escape(': ' + report.notes[name]) if name in report.notes else ''}"
        "</figcaption></figure>"
        for name, path in report.plots.items()
    )
    skipped = "".join(
        f"<li>{html.escape(name)}: {html.escape(why)}</li>" for name, why in report.skipped.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(spec.name)}: sweep report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px}}
img{{max-width:100%}}</style></head><body>
<h1>{html.escape(spec.name)}</h1>
<p>{html.escape(objectives)}, {_count(study) + sweep.running} trials:
{html.escape(counts)}. Searcher {html.escape(spec.searcher_label)}, scheduler
{html.escape(spec.scheduler.kind)}. MLflow sweep run {html.escape(sweep.parent.info.run_id)}.</p>
<h2>{heading}</h2><table>{table}</table>
<h2>Parameter importances</h2>{_note(report, "param_importances")}<table>{importances}</table>
<h2>Plots</h2>{figures}
{f"<h2>Not drawn</h2><ul>{skipped}</ul>" if skipped else ""}
</body></html>
"""


def _best_table(sweep: SweepStudy, finished: list[Any]) -> tuple[str, str]:
    """(heading, table rows): the ten best finished trials, or with several objectives the
    Pareto front (best on the first objective first), each with every objective."""
    spec, front = sweep.spec, sweep.front
    metrics = [o.metric for o in spec.objective_list]
    if front is not None:
        heading = "Pareto front"
        trials = sorted(front.best_trials, key=lambda t: t.values[0], reverse=spec.mode == "max")
        rows = [(t, list(t.values)) for t in trials[:FRONT_ROWS]]
    else:
        heading = "Best trials"
        ranked = sorted(finished, key=lambda t: t.value, reverse=spec.mode == "max")
        rows = [(t, [t.value]) for t in ranked[:10]]
    names = list(spec.params)
    header = "".join(f"<th>{html.escape(n)}</th>" for n in ["trial", *metrics, *names])
    body = "".join(
        "<tr>"
        + f"<td>{html.escape(str(t.user_attrs.get('trial_id', t.number)))}</td>"
        + "".join(f"<td>{value:.6g}</td>" for value in values)
        + "".join(f"<td>{html.escape(_shown(t.params.get(n, '')))}</td>" for n in names)
        + "</tr>"
        for t, values in rows
    )
    return heading, f"<tr>{header}</tr>\n{body}"


def _note(report: Report, plot: str) -> str:
    return f"<p>{html.escape(report.notes[plot].capitalize())}.</p>" if plot in report.notes else ""


def _shown(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
