"""A finished trial frees Ray Tune's moving-average windows and keeps the averages."""

from __future__ import annotations

from ray.tune.experiment import Trial
from ray.tune.trainable.metadata import _TrainingRunMetadata

from tuner.engine.finished_trials import CompactFinishedTrials, drop_average_windows


def trial_with_results(count: int) -> Trial:
    trial = Trial("__fake", config={"lr": 0.1}, stub=True)
    for step in range(1, count + 1):
        trial.update_last_result({"score": float(step), "training_iteration": step})
    return trial


def test_a_finished_trial_keeps_its_averages_without_their_windows() -> None:
    trial = trial_with_results(12)
    before = dict(trial.run_metadata.metric_analysis["score"])
    snapshot_before = trial.run_metadata.get_json_state()
    assert trial.run_metadata.metric_n_steps["score"]["5"], "Ray keeps a window per metric"

    CompactFinishedTrials().on_trial_complete(0, [trial], trial)

    assert trial.run_metadata.metric_n_steps == {}
    assert trial.run_metadata.metric_analysis["score"] == before
    assert before["last-5-avg"] == 10.0 and before["last-10-avg"] == 7.5
    # The experiment snapshot's part for the trial is rebuilt smaller, and restores.
    snapshot = trial.run_metadata.get_json_state()
    assert len(snapshot) < len(snapshot_before)
    restored = _TrainingRunMetadata.from_json_state(snapshot)
    assert restored.metric_analysis["score"] == before


def test_a_result_after_the_windows_went_updates_the_rest() -> None:
    trial = trial_with_results(3)
    assert drop_average_windows(trial)
    trial.update_last_result({"score": 9.0, "training_iteration": 4})
    figures = trial.run_metadata.metric_analysis["score"]
    assert (figures["max"], figures["last"]) == (9.0, 9.0)
    assert not drop_average_windows(trial), "nothing left to free the second time"


def test_a_trial_without_ray_tunes_metadata_is_left_alone() -> None:
    class Elsewhere:
        run_metadata = object()

    assert not drop_average_windows(Elsewhere())
