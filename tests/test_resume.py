"""`--resume` reconciles the Optuna study and the MLflow experiment a killed driver left behind
(real sqlite stores, no Ray): whatever the moment of the kill, each finished trial keeps exactly
one closed run with its final numbers, and each interrupted one is queued again, once."""

from __future__ import annotations

import optuna
import pytest
from mlflow import MlflowClient

from orchestrator.records import TrialRecord
from orchestrator.resume import reconcile
from orchestrator.tracking import SweepTracker

T = optuna.trial.TrialState


@pytest.fixture
def killed(tmp_path):
    """Trial 0 finished in Optuna but its MLflow run was still open (killed between the two
    writes); trial 1 was running in both."""
    storage, uri = f"sqlite:///{tmp_path / 'optuna.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    tracker = SweepTracker.create(uri, "s", params={"objective": "final_val_loss"}, space_file=None)
    asked = [study.ask() for _ in (0, 1)]
    for number, trial in enumerate(asked):
        trial.suggest_float("x", 0.0, 1.0)
        tracker.start_trial(TrialRecord(f"tune_{number}", number, dict(trial.params), [f"x={trial.params['x']}"]), None, None)
        tracker.log_result(TrialRecord(f"tune_{number}", number, {}, []), {"step": 3, "val_loss": 9.0})
    first = asked[0]
    first.report(9.0, 3)
    first.report(8.0, 6)
    first.set_user_attr("status", "completed")
    study.tell(0, 8.0)
    return study, uri


def overrides_of(params):
    return [f"x={params['x']}"]


def test_a_finished_trial_s_open_run_is_closed_with_its_final_numbers(killed):
    study, uri = killed
    carry = reconcile(study, SweepTracker.reopen(uri, "s"), overrides_of, lambda ov: None)
    assert [r.number for r in carry.finished] == [0] and carry.finished[0].final_val_loss == 8.0
    run = next(r for r in MlflowClient(uri).search_runs(["1"]) if r.data.tags.get("optuna_trial") == "0")
    assert run.info.status == "FINISHED" and run.data.tags["status"] == "completed"
    assert run.data.metrics["final_val_loss"] == 8.0 and run.data.metrics["objective"] == 8.0


def test_an_interrupted_trial_is_failed_queued_again_once_and_its_run_closed(killed):
    study, uri = killed
    params = study.trials[1].params
    carry = reconcile(study, SweepTracker.reopen(uri, "s"), overrides_of, lambda ov: None)
    again = reconcile(study, SweepTracker.reopen(uri, "s"), overrides_of, lambda ov: None)  # idempotent
    assert carry.requeued == [1] and again.requeued == [] and [r.number for r in again.finished] == [0]
    trials = study.get_trials()
    assert trials[1].state == T.FAIL and trials[1].user_attrs["status"] == "interrupted"
    waiting = [t for t in trials if t.state == T.WAITING]
    assert len(waiting) == 1 and waiting[0].user_attrs["retry_of"] == 1
    assert waiting[0].system_attrs["fixed_params"] == params  # asked for next, it runs these
    run = next(r for r in MlflowClient(uri).search_runs(["1"]) if r.data.tags.get("optuna_trial") == "1")
    assert run.info.status == "KILLED" and run.data.tags["status"] == "interrupted"


def test_queueing_planned_runs_again_adds_only_those_the_study_lacks(tmp_path):
    from orchestrator.sweep import queue

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    planned = [{"arm": arm, "seed": seed} for seed in (0, 1) for arm in ("baseline", "gelu")]
    queue("a", storage, planned)
    queue("a", storage, planned)  # a resume before any run was asked for
    queue("a", storage, planned + [{"arm": "baseline", "seed": 2}])  # --seeds grew
    study = optuna.load_study(study_name="a", storage=storage)
    assert [t.system_attrs["fixed_params"] for t in study.trials] == planned + [{"arm": "baseline", "seed": 2}]
