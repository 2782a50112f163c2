"""Everything MLflow: one parent run per sweep, one child run per trial, and reading them back.

Owns the batched writer (the driver is the only writer; SQLite allows one), the Tune
callbacks that turn trials into child runs and draw the console progress, the parent
run's lifecycle, reading sweeps back (`tuner best`, `tuner status`) and exporting the
best model. May import spec, search (the early-stop ledger) and trainer (model export).
"""
