"""A sweep's persistent Optuna study (`searcher: {kind: optuna, storage: URL}`), opened
and checked before Ray starts: a wrong URL or a study that optimizes the other way is
one line, and trials an earlier run left running stop counting as running."""

from __future__ import annotations

from collections.abc import Callable

import optuna

from tuner.search.persistent_study import STORAGE_KEY, StudyStorage
from tuner.spec import OptunaSearcher, SpecError, SweepSpec
from tuner.spec.secrets import MissingEnvironment, hidden, resolved, url_secrets

UNFINISHED = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)


def prepare_study_storage(spec: SweepSpec, say: Callable[[str], None]) -> None:
    searcher = spec.searcher
    if not isinstance(searcher, OptunaSearcher) or searcher.storage is None:
        return
    try:
        url = resolved(searcher.storage, STORAGE_KEY)
        # Its password, and one in its query (`?password=${env:PW}`), never printed.
        shown = hidden(url, url_secrets(url))
        storage = StudyStorage(searcher.storage)
    except MissingEnvironment as exc:
        raise SpecError(
            None, exc.key, f"${{env:{exc.name}}}: environment variable {exc.name} is not set"
        ) from None
    except Exception as exc:  # SQLAlchemy's and the drivers' own kinds
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = hidden(reason, url_secrets(url))
        raise SpecError(None, "searcher.storage", f"cannot open {shown}: {reason}") from None
    try:
        study_id = storage.get_study_id_from_name(spec.name)
    except KeyError:
        say(f"Optuna study {spec.name!r} in {shown}: new")
        return
    wanted = "maximize" if spec.mode == "max" else "minimize"
    directions = [direction.name.lower() for direction in storage.get_study_directions(study_id)]
    if directions != [wanted]:
        raise SpecError(
            None,
            "searcher.storage",
            f"the study {spec.name!r} in {shown} is to {' and '.join(directions)}, this sweep "
            f"to {wanted}: rename the sweep or use another storage",
        )
    trials = storage.get_all_trials(study_id, deepcopy=False)
    # A driver that died left its trials RUNNING: the constant liar would count them as
    # running forever, and a WAITING one would be tried by this run unasked.
    unfinished = [trial for trial in trials if trial.state in UNFINISHED]
    for trial in unfinished:
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    say(
        f"Optuna study {spec.name!r} in {shown}: the sampler learns from its "
        f"{len(trials) - len(unfinished)} earlier trials"
        + (
            f"; {len(unfinished)} an earlier run left unfinished marked failed"
            if unfinished
            else ""
        )
    )
