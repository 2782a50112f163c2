"""What to try and when to stop: sweep params as Ray/Optuna spaces, searchers, schedulers.

Owns the conversion of the sweep's params into Ray Tune domains and Optuna
distributions, the searchers (grid, random, Optuna with ASHA-stopped trials told as
PRUNED), the ASHA scheduler with its paper's promotion rule, and the ledger of early
stops they share. Rules are pure functions (`promotion`); the Ray classes are thin
adapters around them. May import `tuner.spec`; never tracking, engine or the trainers.
"""
