"""`speedrun sweep` end to end: real local Ray (one instance for the module), real MLflow and
Optuna sqlite stores in a temporary working directory, real trainer subprocesses of the `tiny`
preset (3 steps, validation on 2,048 tokens). No mocks.

- a full small sweep lands every trial in MLflow (nested runs with val_loss by step, status,
  Optuna number, the resolved config) and in the Optuna study, and writes the best config;
- a trial that crashes (missing data file) and one that diverges (lr 1e6) are recorded as
  failed / diverged, a proposal that breaks a constraint as rejected, and the sweep completes;
- a malformed space exits 2 with file:line errors before anything starts;
- the trainable's subprocess control: SIGTERM stops a running trainer cleanly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from orchestrator.event_tail import EventTail
from orchestrator.launch import TrainerProcess, trainer_command
from orchestrator.outcome import Objective
from orchestrator.sweep import SweepOptions, SweepSetupError, prepare_space, run_sweep
from trainer.config import load_config

from processes import trainer_processes, wait_for_study  # tests/processes.py

pytestmark = pytest.mark.slow

TINY = """\
base:
  config: tiny
  set:
    eval.every: 2
    data.val_tokens: 2048
"""


def write_space(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def child_runs(client: MlflowClient, name: str):
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id])
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parent, children


# ---------------------------------------------------------------------------------------
# A full small sweep


@pytest.fixture(scope="module")
def small_sweep(local_ray, tmp_path_factory):
    """3 trials of 3 steps, TPE over two learning rates, defaults for every store (the cwd)."""
    work = tmp_path_factory.mktemp("sweep")
    space_file = write_space(work, TINY + """\
params:
  optim.muon_lr: {float: [0.01, 0.1], log: true}
  optim.adam_lr: {float: [0.002, 0.03], log: true}
budget: {trials: 3, steps: 3}
sampler: {name: tpe, seed: 0}
resources: {gpus: 0, cpus: 1}
""")
    old = Path.cwd()
    os.chdir(work)
    try:
        t0 = time.time()
        result = run_sweep(prepare_space(space_file), SweepOptions(name="small"))
        print(f"small sweep: {time.time() - t0:.1f} s")
    finally:
        os.chdir(old)
    return work, space_file, result


def test_small_sweep_lands_every_trial_in_mlflow_as_a_nested_run(small_sweep):
    work, space_file, result = small_sweep
    assert (work / "mlflow.db").is_file() and (work / "optuna.db").is_file()
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    parent, children = child_runs(client, "small")
    assert len(parent) == 1 and len(children) == 3
    parent = parent[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["space"] == str(space_file) and parent.data.params["base_config"] == "tiny"
    assert "host" in parent.data.tags
    assert "space.yaml" in [a.path for a in client.list_artifacts(parent.info.run_id)]
    assert sorted(int(c.data.tags["optuna_trial"]) for c in children) == [0, 1, 2]
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["status"] == "completed" and child.info.status == "FINISHED"
        history = client.get_metric_history(child.info.run_id, "val_loss")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 2, 3]
        assert [m.step for m in client.get_metric_history(child.info.run_id, "train_time_ms")] != []
        # the full resolved config, not only the searched keys
        params = child.data.params
        assert params["schedule.num_iterations"] == "3" and params["data.val_tokens"] == "2048"
        assert params["model.num_layers"] == "6" and "optim.muon_lr" in params
        assert "config.yaml" in [a.path for a in client.list_artifacts(child.info.run_id)]
        last = max(history, key=lambda m: m.step)
        assert child.data.metrics["objective"] == pytest.approx(last.value)  # final_val_loss


def test_small_sweep_lands_every_trial_in_the_optuna_study(small_sweep):
    work, _, result = small_sweep
    study = optuna.load_study(study_name="small", storage=f"sqlite:///{work / 'optuna.db'}")
    assert len(study.trials) == 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    by_number = {r.number: r for r in result.records}
    for t in study.trials:
        assert t.user_attrs["status"] == "completed"
        assert t.value == pytest.approx(by_number[t.number].final_val_loss)
        assert sorted(t.intermediate_values) == [0, 2, 3]
        assert f"optim.muon_lr={t.params['optim.muon_lr']}" in by_number[t.number].overrides


def test_small_sweep_writes_the_best_config(small_sweep):
    work, _, result = small_sweep
    best = result.best
    assert best is not None and best.objective == min(r.objective for r in result.records)
    assert result.best_config == work / "sweeps" / "small" / "best.yaml"
    cfg = load_config(str(result.best_config))
    assert cfg.optim.muon_lr == pytest.approx(best.params["optim.muon_lr"])
    assert cfg.schedule.num_iterations == 3
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    parent = child_runs(client, "small")[0][0]
    assert parent.data.metrics["best_final_val_loss"] == pytest.approx(best.objective)
    assert parent.data.tags["best_trial"] == str(best.number)
    for rec in result.records:
        trial_dir = work / "sweeps" / "small" / "trials" / f"trial_{rec.number:04d}"
        assert (trial_dir / "events.jsonl").is_file() and (trial_dir / "trainer.log").is_file()


def test_a_second_sweep_of_the_same_name_is_refused_before_anything_runs(small_sweep, monkeypatch):
    work, space_file, _ = small_sweep
    monkeypatch.chdir(work)
    with pytest.raises(SweepSetupError, match="already exists"):
        run_sweep(prepare_space(space_file), SweepOptions(name="small"))
    study = optuna.load_study(study_name="small", storage=f"sqlite:///{work / 'optuna.db'}")
    assert len(study.trials) == 3


# ---------------------------------------------------------------------------------------
# Failing trials


def test_crashing_diverging_and_rejected_trials_are_recorded_and_the_sweep_completes(local_ray, tmp_path, monkeypatch):
    # a grid over every combination, so each outcome occurs whatever the order:
    #   adam_lr 0.008 / 1e6 (diverges)  x  val files present / missing (the trainer fails at run time)
    #   x muon_lr 0.05 / 0.5, where 0.5 breaks the space's constraint (rejected, never started)
    space_file = write_space(tmp_path, TINY + """\
params:
  optim.adam_lr: {choice: [0.008, 1000000.0]}
  data.val_files: {choice: ["@fixtures/fixture_val_*.bin", "missing/val_*.bin"]}
  optim.muon_lr: {choice: [0.05, 0.5]}
constraints:
  - expr: "optim.muon_lr < 0.1"
    message: muon_lr above 0.1 is out of bounds here
budget: {trials: 8, steps: 3}
sampler: {name: grid, seed: 0}
resources: {gpus: 0, cpus: 1}
""")
    monkeypatch.chdir(tmp_path)
    result = run_sweep(prepare_space(space_file), SweepOptions(name="failures"))

    def expected(params):
        if params["optim.muon_lr"] > 0.1:
            return "rejected"
        if params["data.val_files"].startswith("missing"):
            return "failed"
        return "diverged" if params["optim.adam_lr"] > 1 else "completed"

    assert len(result.records) == 8
    statuses = {r.number: r.status for r in result.records}
    assert all(r.status == expected(r.params) for r in result.records), statuses
    assert sorted(statuses.values()) == ["completed", "diverged", "failed", "failed"] + ["rejected"] * 4
    failed = [r for r in result.records if r.status == "failed"]
    assert all("missing/val_*.bin" in r.error for r in failed)
    assert all("missing/val_*.bin" in r.log_tail for r in failed)  # the trainer's stderr tail
    rejected = [r for r in result.records if r.status == "rejected"]
    assert all("out of bounds" in r.error for r in rejected)
    assert result.best is not None and result.best.status == "completed"

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    _, children = child_runs(client, "failures")
    assert len(children) == 8
    by_number = {int(c.data.tags["optuna_trial"]): c for c in children}
    for rec in result.records:
        run = by_number[rec.number]
        assert run.data.tags["status"] == rec.status
        assert run.info.status == ("FINISHED" if rec.status == "completed" else "FAILED")
        if rec.status in ("failed", "rejected", "diverged"):
            assert run.data.tags["error"]
        if rec.status == "failed":
            assert "trainer_log_tail.txt" in [a.path for a in client.list_artifacts(run.info.run_id)]

    study = optuna.load_study(study_name="failures", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    states = {t.number: t.state for t in study.trials}
    T = optuna.trial.TrialState
    want = {"completed": T.COMPLETE, "diverged": T.COMPLETE, "failed": T.FAIL, "rejected": T.FAIL}
    assert states == {r.number: want[r.status] for r in result.records}
    diverged = [t for t in study.trials if t.user_attrs["status"] == "diverged"]
    assert len(diverged) == 1 and diverged[0].value == float("inf")  # worst, so samplers avoid it
    assert all(t.user_attrs.get("error") for t in study.trials if t.state == T.FAIL)


# ---------------------------------------------------------------------------------------
# Malformed spaces: exit 2, nothing started


@pytest.mark.parametrize(
    "body, expected",
    [
        (TINY + "params:\n  optim.muon_lr: {flaot: [0.01, 0.1]}\nbudget: {trials: 2}\n",
         "space.yaml:7: params.optim.muon_lr.flaot: unknown distribution"),
        (TINY + "params:\n  optim.muon_lrr: {float: [0.01, 0.1]}\nbudget: {trials: 2}\n",
         "did you mean 'optim.muon_lr'"),
    ],
    ids=["typo-in-distribution", "key-the-trainer-rejects"],
)
def test_a_malformed_space_exits_2_before_anything_starts(tmp_path, body, expected):
    space_file = write_space(tmp_path, body)
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "sweep", str(space_file)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), proc.stderr
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"]  # no databases, no sweeps/


# ---------------------------------------------------------------------------------------
# The pieces the trainable is made of


def test_event_tail_returns_only_complete_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.read() == []  # not written yet
    with open(path, "w") as f:
        f.write('{"event": "start"}\n{"event": "val", "st')
        f.flush()
        assert [e["event"] for e in tail.read()] == ["start"]
        f.write('ep": 2, "val_loss": 7.5}\n')
        f.flush()
        assert tail.read() == [{"event": "val", "step": 2, "val_loss": 7.5}]


def test_objectives():
    vals = [{"step": 0, "val_loss": 10.8, "train_time_ms": 0}, {"step": 4, "val_loss": 3.2, "train_time_ms": 900},
            {"step": 8, "val_loss": 3.1, "train_time_ms": 1800}]
    for metric, want in [("final_val_loss", 3.1), ("time_to_target", 900.0), ("steps_to_target", 4.0)]:
        obj = Objective(metric, target=3.28)
        for v in vals:
            obj.add(v)
        assert obj.final("completed") == want
        assert obj.final("diverged") == float("inf")
    missed = Objective("steps_to_target", target=1.0)
    missed.add(vals[-1])
    assert missed.final("completed") == float("inf")


def test_a_stopped_trial_s_trainer_gets_sigterm_and_exits_stopped(tmp_path):
    events = tmp_path / "events.jsonl"
    cmd = trainer_command("tiny", ["schedule.num_iterations=500", "eval.every=1", "data.val_tokens=2048",
                                   "runtime.threads=1"], events)
    proc = TrainerProcess(cmd, cwd=tmp_path, log=tmp_path / "trainer.log")
    tail, seen, deadline = EventTail(events), [], time.time() + 120
    while not any(e["event"] == "val" and e["step"] >= 1 for e in seen) and time.time() < deadline:
        seen += tail.read()
        time.sleep(0.1)
    t0 = time.time()
    code = proc.stop(grace_s=10)
    assert code == 4, proc.log_tail()
    assert time.time() - t0 < 10
    end = [e for e in tail.read() if e["event"] == "end"]
    assert end and end[-1]["status"] == "stopped"


# ---------------------------------------------------------------------------------------
# ASHA early stopping


def test_asha_prunes_a_clearly_worse_trial_and_its_trainer_exits_cleanly(local_ray, tmp_path, monkeypatch):
    # One trial at a time (cpus: 2 on a 2-CPU Ray), so ASHA sees the trials in the grid's
    # seeded order: with seed 6 that is adam_lr 0.008, 1e-6, 0.008 (ASHA never stops the first
    # trial to reach a rung, and a 1e-6 trial after another 1e-6 ties it). adam_lr 1e-6 leaves the val loss at its initial value (10.83 at steps
    # 0, 2, 4, 6); 0.008 gets it to 10.67 by step 2. Rungs at progress 0.25 and 0.5 (steps 2 and
    # 4 of 8): a 1e-6 trial that reaches a rung after a 0.008 one is below the cutoff and stopped.
    space_file = write_space(tmp_path, """\
base:
  config: tiny
  set:
    eval.every: 2
    data.val_tokens: 2048
params:
  optim.adam_lr: {choice: [0.008, 0.000001]}
  optim.muon_lr: {choice: [0.05, 0.06]}
budget: {trials: 3, steps: 8}
sampler: {name: grid, seed: 6}
scheduler: {name: asha, grace: 0.25, reduction_factor: 2, max_t: 1.0}
resources: {gpus: 0, cpus: 2}
""")
    monkeypatch.chdir(tmp_path)
    t0 = time.time()
    result = run_sweep(prepare_space(space_file), SweepOptions(name="asha"))
    print(f"asha sweep: {time.time() - t0:.1f} s")
    order = [(r.number, r.params["optim.adam_lr"], r.status) for r in sorted(result.records, key=lambda r: r.number)]
    assert result.complete and result.exit_code == 0, order
    assert len(result.records) == 3
    pruned = [r for r in result.records if r.status == "pruned"]
    completed = [r for r in result.records if r.status == "completed"]
    assert pruned, order
    assert all(r.params["optim.adam_lr"] < 1e-3 for r in pruned), order  # only the terrible lr
    assert len(pruned) + len(completed) == 3 and completed, order
    assert result.best is not None and result.best.status == "completed"

    for rec in pruned:
        trial_dir = tmp_path / "sweeps" / "asha" / "trials" / f"trial_{rec.number:04d}"
        events = [json.loads(line) for line in (trial_dir / "events.jsonl").read_text().splitlines()]
        # stopped at a rung before the end of its 8 steps, by SIGTERM: the trainer wrote its end
        assert events[-1]["event"] == "end" and events[-1]["status"] == "stopped", events[-1]
        assert max(e["step"] for e in events if e["event"] == "val") < 8

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent, children = child_runs(client, "asha")
    assert len(children) == 3 and parent[0].info.status == "FINISHED"
    by_number = {int(c.data.tags["optuna_trial"]): c for c in children}
    for rec in result.records:
        run = by_number[rec.number]
        assert run.data.tags["status"] == rec.status
        assert run.info.status == {"pruned": "KILLED", "completed": "FINISHED"}[rec.status]

    study = optuna.load_study(study_name="asha", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    T = optuna.trial.TrialState
    states = {t.number: t.state for t in study.trials}
    assert states == {r.number: (T.PRUNED if r.status == "pruned" else T.COMPLETE) for r in result.records}
    for t in study.trials:
        if t.state == T.COMPLETE:
            assert t.value == pytest.approx(next(r.final_val_loss for r in completed if r.number == t.number))


# ---------------------------------------------------------------------------------------
# speedrun ui


def test_speedrun_ui_serves_the_mlflow_ui_on_the_local_store(tmp_path):
    import signal
    import socket
    import urllib.request

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("demo")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "val_loss", 3.5, step=2)
    client.set_terminated(run.info.run_id)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ui.log"
    with open(out, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "ui", "--port", str(port)],
                                cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline, status = time.time() + 60, None
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(base, timeout=5) as resp:
                    status = resp.status
                break
            except OSError:
                time.sleep(0.5)
        assert status == 200, out.read_text()
        assert f"at {base}" in out.read_text()
        api = f"{base}api/2.0/mlflow/experiments/get-by-name?experiment_name=demo"
        with urllib.request.urlopen(api, timeout=10) as resp:
            assert json.load(resp)["experiment"]["experiment_id"] == exp  # the store in the cwd
    finally:
        forced = False
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # `speedrun ui` stops its server
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                forced = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # nothing of its session may outlive the test
        except ProcessLookupError:
            pass
        proc.wait()
    assert not forced, "speedrun ui did not exit within 20 s of SIGTERM"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # the server went with it


# ---------------------------------------------------------------------------------------
# SIGKILL of the driver, then --resume


@pytest.fixture
def sigkill_driver():
    """`kill(cmd, cwd, name, ready)`: run a driver in its own session and SIGKILL it (the driver
    alone: its Ray and trainers must go by themselves) once its study's trials satisfy `ready`.
    Whatever is left of its session is killed when the test ends."""
    import signal

    drivers = []

    def kill(cmd: list[str], cwd: Path, name: str, ready) -> None:
        with open(cwd / f"{name}_killed_driver.log", "w") as log:
            driver = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        drivers.append(driver)
        wait_for_study(f"sqlite:///{cwd / 'optuna.db'}", name, ready, timeout=240)
        driver.send_signal(signal.SIGKILL)
        driver.wait()

    yield kill
    for driver in drivers:
        try:
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_sigkilled_sweep_resumes_with_no_trial_lost_or_duplicated(tmp_path, sigkill_driver):
    T = optuna.trial.TrialState
    space_file = write_space(tmp_path, TINY + """\
params:
  optim.muon_lr: {float: [0.01, 0.1], log: true}
budget: {trials: 4, steps: 8}
sampler: {name: random, seed: 0}
resources: {gpus: 0, cpus: 1}
""")
    sweep = [sys.executable, "-m", "orchestrator.cli", "sweep", str(space_file), "--name", "killed"]
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    # killed while one trial has finished and another is running
    sigkill_driver(sweep, tmp_path, "killed", lambda ts: any(t.state == T.COMPLETE for t in ts)
                   and any(t.state == T.RUNNING for t in ts))
    finished_before = {t.number for t in optuna.load_study(study_name="killed", storage=storage).trials
                       if t.state == T.COMPLETE}
    # the killed driver's trainers do not train on, orphaned
    deadline = time.time() + 60
    while trainer_processes(tmp_path) and time.time() < deadline:
        time.sleep(0.5)
    assert not trainer_processes(tmp_path), "trainers outlived their killed driver"

    resumed = subprocess.run([*sweep, "--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming sweep" in resumed.stdout, resumed.stdout

    study = optuna.load_study(study_name="killed", storage=storage)
    finished = [t for t in study.trials if t.user_attrs.get("status") != "interrupted"]
    interrupted = [t for t in study.trials if t.user_attrs.get("status") == "interrupted"]
    assert len(finished) == 4 and all(t.state == T.COMPLETE for t in finished), [(t.number, t.state) for t in study.trials]
    assert finished_before <= {t.number for t in finished}  # finished trials are kept, not re-run
    assert interrupted and all(t.state == T.FAIL for t in interrupted)
    retries = {t.user_attrs.get("retry_of"): t for t in finished if t.user_attrs.get("retry_of") is not None}
    for t in interrupted:  # each interrupted trial ran again with the same parameters
        assert retries[t.number].params == t.params

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent, children = child_runs(client, "killed")
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    numbers = [int(c.data.tags["optuna_trial"]) for c in children]
    assert sorted(numbers) == sorted({*numbers}), "an Optuna trial has two MLflow runs"
    by_number = {int(c.data.tags["optuna_trial"]): c for c in children}
    for t in finished:
        run = by_number[t.number]
        assert run.data.tags["status"] == "completed" and run.info.status == "FINISHED"
        assert run.data.metrics["val_loss"] == pytest.approx(t.value)
    for t in interrupted:
        if t.number in by_number:
            assert by_number[t.number].data.tags["status"] == "interrupted"
            assert by_number[t.number].info.status == "KILLED"


# ---------------------------------------------------------------------------------------
# An ablation end to end: killed, resumed, reported


def test_a_killed_ablation_resumes_without_rerunning_finished_seeds_and_reports_its_effects(tmp_path, sigkill_driver):
    T = optuna.trial.TrialState
    ablation = write_space(tmp_path, """\
base:
  config: tiny
  set: {eval.every: 3, data.val_tokens: 2048}
variants:
  gelu: {model.relu_squared: false}
seeds: 3
budget: {steps: 6}
resources: {gpus: 0, cpus: 1}
""", name="ablation.yaml")
    ablate = [sys.executable, "-m", "orchestrator.cli", "ablate", str(ablation), "--name", "abl"]
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    sigkill_driver(ablate, tmp_path, "abl", lambda ts: sum(t.state == T.COMPLETE for t in ts) >= 2
                   and any(t.state == T.RUNNING for t in ts))
    done_before = {t.number for t in optuna.load_study(study_name="abl", storage=storage).trials if t.state == T.COMPLETE}
    resumed = subprocess.run([*ablate, "--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    study = optuna.load_study(study_name="abl", storage=storage)
    completed = [(t.params["arm"], t.params["seed"]) for t in study.trials if t.state == T.COMPLETE]
    assert sorted(completed) == sorted((arm, s) for arm in ("baseline", "gelu") for s in (0, 1, 2))  # each once
    assert all(study.trials[n].state == T.COMPLETE for n in done_before)  # kept, not re-run

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    _, children = child_runs(client, "abl")
    finished = [c for c in children if c.data.tags["status"] == "completed"]
    assert sorted((c.data.params["searched.arm"], int(c.data.params["searched.seed"])) for c in finished) == sorted(completed)
    assert all(c.data.params["runtime.seed"] == c.data.params["searched.seed"] for c in finished)

    # the effect table is printed and the report written, with its figures
    assert "gelu" in resumed.stdout and "p paired" in resumed.stdout and "p Holm" in resumed.stdout, resumed.stdout
    report = tmp_path / "reports" / "abl" / "report.md"
    text = report.read_text()
    assert "| gelu" in text and "3 pairs" in text
    for figure in ("arms.png", "arm_curves.png"):
        assert (report.parent / figure).stat().st_size > 10_000 and f"]({figure})" in text


def test_resuming_an_ablation_with_more_seeds_runs_only_the_new_seeds(local_ray, tmp_path, monkeypatch):
    from orchestrator.ablate import prepare_ablation

    monkeypatch.chdir(tmp_path)
    ablation = write_space(tmp_path, """\
base:
  config: tiny
  set: {eval.every: 2, data.val_tokens: 2048}
variants:
  gelu: {model.relu_squared: false}
seeds: 2
budget: {steps: 2}
resources: {gpus: 0, cpus: 1}
""", name="ablation.yaml")
    first = run_sweep(prepare_ablation(ablation), SweepOptions(name="grow"))
    assert first.complete and len(first.records) == 4
    more = run_sweep(prepare_ablation(ablation, seeds=3), SweepOptions(name="grow", resume=True))
    assert more.complete and len(more.records) == 6
    study = optuna.load_study(study_name="grow", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    runs = sorted((t.params["arm"], t.params["seed"]) for t in study.trials)
    assert runs == sorted((arm, s) for arm in ("baseline", "gelu") for s in (0, 1, 2))  # each once
    assert {t.number for t in study.trials if t.params["seed"] == 2} == {4, 5}  # only the new seed ran again


def test_relative_sqlite_stores_are_pinned_to_the_sweep_s_directory(tmp_path):
    # MLflow caches a store per URI for the life of the process: a relative path must not follow
    # the first directory it was used in
    options = SweepOptions(workdir=tmp_path)
    assert options.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert options.storage == f"sqlite:///{tmp_path.resolve() / 'optuna.db'}"
    assert SweepOptions(tracking_uri="http://mlflow:5000", workdir=tmp_path).tracking_uri == "http://mlflow:5000"


def test_a_trial_whose_ray_worker_dies_is_retried_and_recorded_once(tmp_path):
    import signal

    space = write_space(tmp_path, TINY + """\
params:
  optim.muon_lr: {float: [0.01, 0.1], log: true}
budget: {trials: 1, steps: 40}
sampler: {name: random, seed: 0}
resources: {gpus: 0, cpus: 2}
""")
    cmd = [sys.executable, "-m", "orchestrator.cli", "sweep", str(space), "--name", "lost"]
    with open(tmp_path / "driver.log", "w") as log:
        driver = subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        events = tmp_path / "sweeps" / "lost" / "trials" / "trial_0000" / "events.jsonl"
        deadline = time.time() + 180
        while not (events.is_file() and '"event": "train"' in events.read_text()) and time.time() < deadline:
            time.sleep(0.2)
        trainer = trainer_processes(tmp_path)
        assert trainer, "the trial's trainer never started"
        worker = int(Path(f"/proc/{trainer[0]}/stat").read_text().split(")")[1].split()[1])  # its parent
        killed_at = time.time()
        os.kill(worker, signal.SIGKILL)  # the node loses the trial's Ray worker
        assert driver.wait(timeout=400) == 0, (tmp_path / "driver.log").read_text()
        first = json.loads(events.read_text().splitlines()[0])
        assert first["time"] > killed_at  # the trial ran again from the start, in a new worker
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    study = optuna.load_study(study_name="lost", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
    _, children = child_runs(MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}"), "lost")
    assert len(children) == 1 and children[0].data.tags["status"] == "completed"  # retried, not duplicated
