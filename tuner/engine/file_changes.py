"""What a sweep file given to `tuner resume` changed since its sweep started.

A resume goes on with the sweep as it started: Ray Tune restores its trials, its
searcher (with its space and num_samples) and its trainable from the saved state. A
file edited since (num_samples raised, a range changed, the trainable renamed) cannot
take effect, and the resume ran the old sweep without a word: the user's edits looked
applied. One warning names them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tuner.engine.trainables import with_absolute_paths
from tuner.spec import SweepSpec

SHOWN = 5  # changes named in the warning; the rest are counted
# Rewritten by `tuner run` before it stores the sweep: an MLflow model reference becomes
# the file the trials read, and its architecture is added to config.
REWRITTEN = ("config.init_from",)
_UNSET = object()


def changes_note(stored: SweepSpec, edited: SweepSpec) -> str | None:
    """One warning line naming the keys where `edited` (the user's file) differs from
    `stored` (the sweep as it started), or None when they agree."""
    changes = list(_differences(_dumped(stored), _dumped(_as_stored(edited)), ""))
    if not changes:
        return None
    listed = [f"{key} {_shown(was)} (file: {_shown(now)})" for key, was, now in changes[:SHOWN]]
    more = f" and {len(changes) - SHOWN} more" if len(changes) > SHOWN else ""
    return (
        f"warning: the sweep file differs from sweep {stored.name!r} as it started, and a "
        f"resume goes on as it started (Ray Tune restores its trials and searcher as saved): "
        f"{', '.join(listed)}{more}; `tuner run` on the file starts a new sweep with its values"
    )


def _as_stored(edited: SweepSpec) -> SweepSpec:
    """The file as `tuner run` would have stored it: secrets withheld, paths absolute."""
    return with_absolute_paths(edited.without_secrets()[0])


def _dumped(spec: SweepSpec) -> dict[str, Any]:
    dumped: dict[str, Any] = spec.model_dump(mode="json", exclude_defaults=True, by_alias=True)
    return dumped


def _differences(was: Any, now: Any, key: str) -> Iterator[tuple[str, Any, Any]]:
    if key in REWRITTEN:
        return
    if isinstance(was, dict) and isinstance(now, dict):
        for name in [*was, *(name for name in now if name not in was)]:
            inner = f"{key}.{name}" if key else str(name)
            # A config entry tuner added (init_from's architecture) is not the user's edit.
            if key == "config" and name not in now:
                continue
            yield from _differences(was.get(name, _UNSET), now.get(name, _UNSET), inner)
    elif was != now:
        yield key, was, now


def _shown(value: Any) -> str:
    return "unset" if value is _UNSET else repr(value)
