"""Faults a sweep must survive with its stores in agreement and no process left behind: a second
driver, SIGTERM to the driver (what `timeout`, systemd and Slurm send), a resume with another
space, a store whose runs a dead driver left wrong, a deleted MLflow database and a full disk.

Real components throughout: `speedrun sweep` drivers as subprocesses in sessions of their own,
a local Ray each, tiny trainer runs, sqlite stores, real signals, and a small tmpfs for the full
disk (skipped, saying why, where this machine cannot mount one).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from orchestrator.driver_lock import SweepBusy, driver_lock
from orchestrator.records import TrialRecord
from orchestrator.resume import SPACE_ATTR, check_same_space, reconcile, record_space
from orchestrator.sweep import prepare_space
from orchestrator.tracking import SweepTracker
from trainer.process import session_members

from processes import trainer_processes, wait_for_study  # tests/processes.py

T = optuna.trial.TrialState
SPACE = """\
base:
  config: tiny
  set: {{eval.every: 2, data.val_tokens: 2048}}
params:
  optim.muon_lr: {{float: [0.01, 0.1], log: true}}
budget: {{trials: {trials}, steps: {steps}}}
sampler: {{name: random, seed: 0}}
resources: {{gpus: 0, cpus: 1}}
"""


def sweep_cmd(space: Path, name: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator.cli", "sweep", str(space), "--name", name, *extra]


def start_driver(cmd: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "COLUMNS": "200"})


def stores(work: Path) -> tuple[str, str]:
    return f"sqlite:///{work / 'optuna.db'}", f"sqlite:///{work / 'mlflow.db'}"


def trial_runs(tracking_uri: str, name: str) -> dict[int, object]:
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id])
    return {int(r.data.tags["optuna_trial"]): r for r in runs if "optuna_trial" in r.data.tags}


def leftovers(driver: subprocess.Popen, work: Path, timeout: float = 30) -> list[int]:
    """Processes of the driver's session, or trainers working in `work`, still alive after `timeout`."""
    deadline = time.time() + timeout
    while True:
        left = (session_members(driver.pid) or []) + trainer_processes(work)
        if not left or time.time() > deadline:
            return left
        time.sleep(0.5)


# ---------------------------------------------------------------------------------------
# A running driver: a second one is refused; SIGTERM stops it as Ctrl-C does


@pytest.fixture(scope="module")
def sigtermed(tmp_path_factory):
    """A driver of one long trial; while it runs, a resume and a new sweep of its name are tried;
    then it gets SIGTERM. Returns what each saw."""
    work = tmp_path_factory.mktemp("sigterm")
    space = work / "space.yaml"
    space.write_text(SPACE.format(trials=1, steps=400))
    storage, tracking = stores(work)
    driver = start_driver(sweep_cmd(space, "busy"), work, work / "driver.log")
    try:
        wait_for_study(storage, "busy", lambda ts: any(t.state == T.RUNNING and t.intermediate_values for t in ts))
        second = [subprocess.run(sweep_cmd(space, "busy", *flag), cwd=work, capture_output=True, text=True, timeout=120)
                  for flag in (["--resume"], [])]
        driver.send_signal(signal.SIGTERM)
        code = driver.wait(timeout=120)
        left = leftovers(driver, work)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
    return dict(work=work, pid=driver.pid, second=second, code=code, log=(work / "driver.log").read_text(),
                left=left, storage=storage, tracking=tracking)


def test_a_second_driver_of_a_running_sweep_is_refused_naming_the_running_one(sigtermed):
    for attempt in sigtermed["second"]:
        assert attempt.returncode == 2, attempt.stdout + attempt.stderr
        errors = [line for line in attempt.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and errors[0].startswith("error: sweep 'busy' is being run by another driver"), errors
        assert f"pid {sigtermed['pid']}" in errors[0]


def test_a_refused_second_driver_changes_nothing_in_the_stores(sigtermed):
    study = optuna.load_study(study_name="busy", storage=sigtermed["storage"])
    assert [t.number for t in study.trials if t.user_attrs.get("retry_of") is not None] == [1]  # the SIGTERM's, alone
    assert len(trial_runs(sigtermed["tracking"], "busy")) == 1


def test_sigterm_stops_the_sweep_as_ctrl_c_does(sigtermed):
    log = sigtermed["log"]
    assert sigtermed["code"] == 130, log
    assert "SIGTERM received" not in log and "Traceback" not in log, log  # no native stack dump
    assert "interrupted: 0 of 1 trials finished" in log and "trials, best final_val_loss first" in log, log


def test_after_sigterm_the_stores_agree_and_the_trial_is_queued_again(sigtermed):
    study = optuna.load_study(study_name="busy", storage=sigtermed["storage"])
    first, retry = study.trials
    assert first.state == T.FAIL and first.user_attrs["status"] == "interrupted"
    assert retry.state == T.WAITING and retry.user_attrs["retry_of"] == 0
    run = trial_runs(sigtermed["tracking"], "busy")[0]
    assert run.info.status == "KILLED" and run.data.tags["status"] == "interrupted"


def test_after_sigterm_no_process_of_the_sweep_is_left(sigtermed):
    assert sigtermed["left"] == []


def test_a_dead_driver_leaves_no_lock_held(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom orchestrator.driver_lock import driver_lock\n"
        f"with driver_lock({storage!r}, 's'):\n    print('held', flush=True)\n    time.sleep(600)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(SweepBusy, match=f"pid {holder.pid}"), driver_lock(storage, "s"):
        pass
    holder.kill()
    holder.wait()
    with driver_lock(storage, "s"):  # SIGKILL released it
        pass


# ---------------------------------------------------------------------------------------
# Resuming with another space


@pytest.fixture
def recorded(tmp_path):
    """A study that recorded the space of 2 trials of 40 steps, log-uniform muon_lr."""
    space = tmp_path / "space.yaml"
    space.write_text(SPACE.format(trials=2, steps=40))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    record_space(study, prepare_space(space))
    return study, space


def test_a_resume_that_changes_what_trials_mean_is_refused_naming_the_keys(recorded):
    study, space = recorded
    space.write_text(SPACE.format(trials=2, steps=6).replace("log: true", "log: false"))
    with pytest.raises(Exception, match=r"budget\.steps \(40 -> 6\); params\.optim\.muon_lr\.log \(true -> false\)"):
        check_same_space(study, prepare_space(space))


def test_a_resume_may_run_more_trials_on_more_cpus_with_another_sampler(recorded):
    study, space = recorded
    space.write_text(SPACE.format(trials=9, steps=40).replace("cpus: 1", "cpus: 2").replace("random", "tpe"))
    check_same_space(study, prepare_space(space))


def test_a_sweep_from_before_spaces_were_recorded_records_the_one_it_resumes_with(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE.format(trials=2, steps=40))
    study = optuna.create_study(study_name="old", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    check_same_space(study, prepare_space(space))
    assert study.user_attrs[SPACE_ATTR]["budget.steps"] == "40"


def test_the_cli_refuses_a_changed_space_before_anything_runs(recorded, tmp_path):
    study, space = recorded
    space.write_text(SPACE.format(trials=2, steps=6))
    done = subprocess.run(sweep_cmd(space, "s", "--resume"), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: --resume: the space of sweep 's' changed"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "sweeps").exists()


# ---------------------------------------------------------------------------------------
# Runs a dead driver closed wrong are repaired on resume


def test_resume_repairs_a_run_a_dead_driver_closed_as_still_running(tmp_path):
    storage, uri = stores(tmp_path)
    study = optuna.create_study(study_name="s", storage=storage)
    tracker = SweepTracker.create(uri, "s", params={}, space_file=None)
    asked = [study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}) for _ in range(2)]
    for trial in asked:
        tracker.start_trial(TrialRecord(f"tune_{trial.number}", trial.number, dict(trial.params), []), None, None)
    asked[0].set_user_attr("status", "completed")  # trial 0 finished in Optuna, trial 1 was running
    study.tell(asked[0], 5.0)
    for run_id in tracker.runs.values():  # what a driver dying of a second Ctrl-C used to leave
        MlflowClient(uri).set_terminated(run_id, "FAILED")
    reconcile(study, SweepTracker.reopen(uri, "s"), lambda p: [], lambda ov: None)
    runs = trial_runs(uri, "s")
    assert (runs[0].info.status, runs[0].data.tags["status"]) == ("FINISHED", "completed")
    assert (runs[1].info.status, runs[1].data.tags["status"]) == ("KILLED", "interrupted")


# ---------------------------------------------------------------------------------------
# A store lost or full mid-sweep: one error line, the other store kept, --resume recovers


def finish_after(work: Path, name: str, ready, fault, trials: int = 1, steps: int = 30) -> tuple[int, str]:
    """Run a sweep, apply `fault()` once its study satisfies `ready`, and wait for the driver."""
    space = work / "space.yaml"
    space.write_text(SPACE.format(trials=trials, steps=steps))
    driver = start_driver(sweep_cmd(space, name), work, work.parent / f"{work.name}-driver.log")
    try:
        wait_for_study(stores(work)[0], name, ready)
        fault()
        code = driver.wait(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
    return code, (work.parent / f"{work.name}-driver.log").read_text()


def one_error_line(log: str) -> str:
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in log, log
    return errors[0]


def test_a_deleted_mlflow_database_gives_one_error_line_and_resume_rebuilds_it(tmp_path):
    storage, uri = stores(tmp_path)
    code, log = finish_after(tmp_path, "lost", lambda ts: any(t.intermediate_values for t in ts),
                             lambda: (tmp_path / "mlflow.db").unlink())
    assert code == 1 and "the MLflow store could not be written" in one_error_line(log)
    assert [t.state for t in optuna.load_study(study_name="lost", storage=storage).trials] == [T.COMPLETE]

    resumed = subprocess.run(sweep_cmd(tmp_path / "space.yaml", "lost", "--resume"), cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    run = trial_runs(uri, "lost")[0]
    assert run.data.tags["status"] == "completed" and run.info.status == "FINISHED"


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs (root only; skipped where it cannot be mounted)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs for a full disk here: {mounted.stderr.strip() or 'mount failed'}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_disk_full_at_start_gives_one_error_line(small_disk):
    (small_disk / "filler").write_bytes(b"\0" * (4 * 2**20 - 16 * 1024))
    (small_disk / "space.yaml").write_text(SPACE.format(trials=1, steps=4))
    done = subprocess.run(sweep_cmd(small_disk / "space.yaml", "full"), cwd=small_disk, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "database or disk is full" in one_error_line(done.stderr) or "No space left" in done.stderr


def test_a_disk_full_mid_sweep_gives_one_error_line_and_resume_recovers(small_disk):
    def fill() -> None:
        with open(small_disk / "filler", "wb") as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)

    code, log = finish_after(small_disk, "full", lambda ts: any(t.intermediate_values for t in ts), fill)
    assert code == 1 and "could not be written" in one_error_line(log)
    (small_disk / "filler").unlink()
    resumed = subprocess.run(sweep_cmd(small_disk / "space.yaml", "full", "--resume"), cwd=small_disk,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    storage, uri = stores(small_disk)
    study = optuna.load_study(study_name="full", storage=storage)
    runs = trial_runs(uri, "full")
    assert any(t.state == T.COMPLETE for t in study.trials)
    for t in study.trials:  # the stores agree on every trial that ran (one cut off before its run was made has none)
        if t.state != T.WAITING and (t.number in runs or t.user_attrs["status"] != "interrupted"):
            assert runs[t.number].data.tags["status"] == t.user_attrs["status"], (t.number, t.state, runs[t.number].data.tags)
