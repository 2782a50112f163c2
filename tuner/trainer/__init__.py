"""The built-in PyTorch trainers (`builtin:classifier`, `builtin:regressor`).

Owns the knobs of good training practice as a pydantic schema (`knobs`, importable
without torch), the registry of built-ins, data loading, models, losses, optimizers and
schedules, the epoch loop and its checkpoints, and the model export of a finished trial.
May import `tuner.defaults` only: the trainers know nothing of Ray Tune's searchers,
MLflow or the sweep file. Import submodules directly; this package imports none.
"""
