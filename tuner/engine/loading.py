"""`load_spec`: a sweep file checked end to end before anything expensive starts.

The schema is checked by `tuner.spec`; whether the trainable imports and accepts the
sweep's params and config is checked here, where the trainers are known. Neither step
starts Ray or imports torch (a user's own trainable module is imported: that is the check;
a built-in's `init_from` checkpoint is read with torch, to check it against the sweep).
"""

from __future__ import annotations

from pathlib import Path

from tuner.engine.pretrained import prepare_init_from
from tuner.engine.trainables import check_trainable as _check_trainable
from tuner.spec import SpecError, SweepSpec, read_spec


def load_spec(
    path: str | Path, *, check_trainable: bool = True, hold_data: bool = True
) -> SweepSpec:
    """Read and validate a sweep file; every failure is a one-line SpecError naming it.

    `hold_data=False`: the file is only checked (`tuner validate`), so a built-in's .csv
    is read a chunk at a time rather than loaded and kept for the sweep's trials."""
    spec = read_spec(path)
    if check_trainable:
        try:
            _check_trainable(spec, hold_data=hold_data)
            prepare_init_from(spec)  # what needs no MLflow: the run fetches and stages
        except SpecError as exc:
            raise SpecError(Path(path), exc.key, exc.problem) from None
    return spec
