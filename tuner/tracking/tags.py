"""The tags tuner puts on MLflow runs: what users, `tuner best` and `tuner status` filter on."""

from __future__ import annotations

TAG_ROLE = "tuner.role"  # "sweep" or "trial"
TAG_PARENT = "mlflow.parentRunId"
TAG_TRIAL_ID = "tuner.trial_id"
TAG_STOPPED_EARLY = "tuner.stopped_early"
TAG_STOPPED_AT = "tuner.stopped_at_epoch"
TAG_CHECKPOINT = "tuner.checkpoint"
TAG_ERROR = "tuner.error"
TAG_STOP_REASON = "tuner.stop_reason"  # a trainable that ended itself early says why
TAG_BEST_RUN = "tuner.best_run_id"
# On the best trial's run: the artifact holding its model's class names, in output order.
TAG_CLASSES = "tuner.classes"
TAG_BEST_TRIAL = "tuner.best_trial_id"
TAG_EXPERIMENT_PATH = "tuner.experiment_path"  # where Ray Tune keeps the sweep's state
TAG_SUBMISSION = "tuner.submission_id"  # the Ray job that drives the sweep, if any
TAG_RESTARTS = "tuner.restarts"  # times a trial restarted from its checkpoint
# A multi-worker trial's workers, in words ("2 workers x 1 CPU"); `tuner status` shows it.
TAG_WORKERS = "tuner.workers"
# Seconds of training redone after restarts: a trial's, and on the sweep run the total.
TAG_LOST_WORK = "tuner.lost_work_s"
TAG_RESTART_REASON = "tuner.restart_reason"  # "preempted", "node lost" or "error"
TAG_KILLED = "tuner.killed"  # why a run was cut off (a Ctrl-C, a stop)
# Tags that describe how a trial's run ended; a resumed trial is no longer in that state.
END_TAGS = (TAG_ERROR, TAG_KILLED)
TAG_STOPPED_BY = "tuner.stopped_by"  # "budget": the sweep ended when its budget was spent
TAG_BUDGET_REACHED = "tuner.budget_reached"  # which limit, e.g. "max_wall 2h"
TAG_STOP_WHEN = "tuner.stop_when"  # stop_when ended the sweep: the regret bound, in words
TAG_OBJECTIVES = "tuner.objectives"  # JSON [[metric, mode], ...] of a multi-objective sweep
TAG_PARETO = "tuner.pareto"  # "true" on each run of the sweep's Pareto front
TAG_PARETO_RUNS = "tuner.pareto_runs"  # the front's run ids, comma-separated, on the sweep
TAG_PARETO_SIZE = "tuner.pareto_size"  # how many trials the front holds
# PBT: a trial's exploits, JSON [{epoch, from_trial, from_epoch}, ...] (the latest 80),
# and how many; the sweep run's best-trial schedule is engine.population.TAG_SCHEDULE.
TAG_EXPLOIT = "tuner.exploit"
TAG_EXPLOITS = "tuner.exploits"
TAG_SCHEDULE = "tuner.pbt_schedule"  # the best trial's schedule (YAML), on the sweep run
