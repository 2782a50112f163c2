"""Running a sweep: the one place a ray.tune.Tuner is built, and everything around it.

Owns the Ray session (embedded on loopback, or joined), storage (a folder or s3://),
the experiments a sweep keeps there and resuming them, resolving and checking the
trainable a sweep names, and `run_sweep` / `resume_sweep`, which tie search, tracking
and the trainers together. May import spec, search, tracking and trainer; only the CLI
and the cluster package import it. Importing this package starts nothing: its modules
import Ray when they are imported themselves.
"""
