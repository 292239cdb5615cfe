"""`scheduler: horizon` end to end: successive halving over complete runs at shorter horizons.

Real local Ray, real MLflow and Optuna sqlite stores (absolute URIs) in a temporary directory,
real trainer subprocesses of the `tiny` preset at 4 steps (rungs of 1, 2 and 4 steps). No mocks.
The end-to-end sweeps run one trial at a time (cpus: 2 on a 2-CPU Ray), so runs finish in the
order Optuna numbered them and each promotion can be checked against what had finished before it.
"""

from __future__ import annotations

import io
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import ray
from mlflow import MlflowClient
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from rich.console import Console

from analysis.report import write_report
from orchestrator.horizon import due_promotions, promote, sampler_caveat
from orchestrator.progress import SweepConsole
from orchestrator.records import Rung, TrialRecord
from orchestrator.sweep import SweepOptions, init_ray, prepare_space, run_sweep
from search_spaces import SchedulerSpec, SpaceError, load_space
from trainer.config import load_config

pytestmark = pytest.mark.slow

RUNGS = [0.25, 0.5, 1.0]
SPACE = """\
base:
  config: tiny
  set:
    eval.every: 1
    data.val_tokens: 2048
params:
  optim.muon_lr: {float: [0.01, 0.1], log: true}
  optim.adam_lr: {float: [0.002, 0.03], log: true}
budget: {trials: 4, steps: 4}
sampler: {name: random, seed: 0}
scheduler: {name: horizon, rungs: [0.25, 0.5, 1.0], reduction_factor: 2}
resources: {gpus: 0, cpus: 2}
"""
T = TrialState


def rung(t) -> Rung | None:
    return Rung.of(t.user_attrs)


def runs_at(trials, k: int) -> list:
    return [t for t in trials if rung(t) is not None and rung(t).index == k and t.user_attrs.get("status") != "interrupted"]


def top(trials, share: float) -> list:
    done = sorted((t for t in trials if t.state == T.COMPLETE and math.isfinite(t.value)), key=lambda t: (t.value, t.number))
    return done[: math.floor(len([t for t in trials if t.state == T.COMPLETE]) / share + 1e-9)]


# ---------------------------------------------------------------------------------------
# The promotion rule, on an Optuna study of finished runs


def study_of(values_by_rung: dict[int, list[tuple[int, float]]]) -> optuna.Study:
    """A study holding complete runs: rung -> [(config trial, final val loss)], in that order."""
    study = optuna.create_study()
    for k, runs in values_by_rung.items():
        for config, value in runs:
            attrs = Rung(k, RUNGS[k], config, promoted_from=None if k == 0 else config).attrs()
            study.add_trial(create_trial(params={"x": config / 10}, distributions={"x": FloatDistribution(0, 10)},
                                         value=value, user_attrs=attrs))
    return study


def test_the_best_half_of_a_rung_s_finished_runs_is_promoted_once():
    spec = SchedulerSpec(name="horizon", rungs=RUNGS, reduction_factor=2)
    study = study_of({0: [(0, 5.0), (1, 4.0), (2, 6.0), (3, 3.0), (4, math.inf)]})  # 5 finished: the best 2 go on
    first = promote(study, spec)
    assert sorted((t.user_attrs["config_trial"], r.index, r.fidelity, r.promoted_from) for t, r in first) == [
        (1, 1, 0.5, 1), (3, 1, 0.5, 3)]
    queued = study.get_trials(states=(T.WAITING,))
    assert sorted((w.user_attrs["config_trial"], w.user_attrs["rung"], w.system_attrs["fixed_params"]["x"]) for w in queued) == [
        (1, 1, 0.1), (3, 1, 0.3)]  # the same params, at the next rung
    assert promote(study, spec) == []  # queued already: not again


def test_promotion_waits_for_enough_finished_runs_and_skips_diverged_ones():
    spec = SchedulerSpec(name="horizon", rungs=RUNGS, reduction_factor=2)
    assert due_promotions(study_of({0: [(0, 5.0)]}).trials, spec) == []  # 1 run: its best half is nobody
    diverged = study_of({0: [(0, math.inf), (1, math.inf)]})
    assert due_promotions(diverged.trials, spec) == []


def test_a_promoted_run_s_rung_promotes_to_the_last_rung():
    spec = SchedulerSpec(name="horizon", rungs=RUNGS, reduction_factor=2)
    study = study_of({0: [(0, 5.0), (1, 4.0), (2, 6.0), (3, 3.0)], 1: [(1, 3.5), (3, 2.5)]})
    assert [(r.config_trial, r.index, r.fidelity) for _, r in due_promotions(study.trials, spec)] == [(3, 2, 1.0)]


def test_sync_promotion_waits_until_every_config_has_finished_its_rung():
    spec = SchedulerSpec(name="horizon", rungs=RUNGS, reduction_factor=2, promotion="sync")
    study = study_of({0: [(0, 5.0), (1, 4.0), (2, 6.0)]})
    assert due_promotions(study.trials, spec, configs=4) == []  # the 4th config is not proposed yet
    running = study.ask()
    for key, value in Rung(0, RUNGS[0], running.number).attrs().items():
        running.set_user_attr(key, value)
    assert due_promotions(study.trials, spec, configs=4) == []  # proposed, not finished
    study.tell(running, 3.0)
    assert sorted(r.config_trial for _, r in due_promotions(study.trials, spec, configs=4)) == [1, running.number]


def test_sync_promotion_closes_a_rung_only_once_the_rung_below_has_closed():
    spec = SchedulerSpec(name="horizon", rungs=RUNGS, reduction_factor=2, promotion="sync")
    study = study_of({0: [(0, 5.0), (1, 4.0), (2, 6.0), (3, 3.0)], 1: [(1, 3.5), (3, 2.5)]})
    assert [(r.config_trial, r.index) for _, r in due_promotions(study.trials, spec, configs=5)] == []
    assert [(r.config_trial, r.index) for _, r in due_promotions(study.trials, spec, configs=4)] == [(3, 2)]


def test_the_console_count_grows_when_async_promotion_runs_more_than_expected():
    view = SweepConsole(2, 1, "final_val_loss", Console(file=io.StringIO(), width=200))
    for n in range(3):
        view.trial_finished(TrialRecord(str(n), n, {}, [], status="completed", objective=5.0 - n,
                                        rung=Rung(0, RUNGS[0], n)), running=0)
    lines = view.console.file.getvalue().splitlines()
    assert [line.split("]")[0] for line in lines] == ["[1/2", "[2/2", "[3/3"]


# ---------------------------------------------------------------------------------------
# The space file


@pytest.mark.parametrize(
    "scheduler, expected",
    [
        ("{name: horizon, rungs: [0.5, 0.25, 1.0]}", "scheduler.rungs: got [0.5, 0.25, 1.0]; expected strictly increasing"),
        ("{name: horizon, rungs: [0.25, 0.5]}", "scheduler.rungs: got [0.25, 0.5]; expected a last rung of 1.0"),
        ("{name: horizon, rungs: [0, 1.0]}", "scheduler.rungs: got [0, 1.0]; expected fractions of the run in (0, 1]"),
        ("{name: horizon, rungs: [1.0]}", "scheduler.rungs: got [1.0]; expected at least two horizons"),
        ("{name: horizon, reduction_factor: 1}", "scheduler.reduction_factor: got 1; expected greater than 1"),
        ("{name: horizon, grace: 0.5}", "scheduler: grace: only for asha, not horizon"),
        ("{name: asha, rungs: [0.5, 1.0]}", "scheduler: rungs: only for horizon, not asha"),
        ("{name: horizon, rungs: [0.125, 0.25, 0.5, 1.0]}", "budget.trials: 4 configs never reach the last rung"),
        ("{name: horizon, rungs: [1/0, 1]}", "scheduler.rungs: got ['1/0', 1]; expected fractions of the run written as numbers or as a/b"),
        ("{name: horizon, promotion: later}", "scheduler.promotion: got 'later'; expected one of async, sync"),
        ("{name: asha, promotion: sync}", "scheduler: promotion: only for horizon, not asha"),
    ],
    ids=["decreasing", "short-of-full", "zero", "one-rung", "factor", "asha-field", "horizon-field", "too-few-trials",
         "bad-fraction", "bad-promotion", "asha-promotion"],
)
def test_a_bad_horizon_scheduler_is_reported_at_its_field(tmp_path, scheduler, expected):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE.replace("scheduler: {name: horizon, rungs: [0.25, 0.5, 1.0], reduction_factor: 2}",
                                  f"scheduler: {scheduler}"))
    with pytest.raises(SpaceError) as err:
        load_space(path)
    assert expected in str(err.value)
    assert "space.yaml:" in str(err.value)


def test_rungs_may_be_written_as_fractions(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE.replace("rungs: [0.25, 0.5, 1.0]", "rungs: [1/4, 1/2, 1]"))
    assert load_space(path).scheduler.rungs == RUNGS


@pytest.mark.parametrize(("sampler", "promotion", "warned"), [
    ("tpe", "sync", True), ("cmaes", "sync", True), ("random", "sync", False), ("qmc", "sync", False),
    ("tpe", "async", False),
])
def test_a_model_based_sampler_with_sync_promotion_is_cautioned(sampler, promotion, warned):
    caveat = sampler_caveat(sampler, SchedulerSpec(name="horizon", rungs=RUNGS, promotion=promotion))
    assert (caveat is not None) == warned
    assert caveat is None or "sampler: random or qmc" in caveat


# ---------------------------------------------------------------------------------------
# A horizon sweep


@pytest.fixture(scope="module")
def horizon_sweep(tmp_path_factory):
    work = tmp_path_factory.mktemp("horizon")
    (work / "space.yaml").write_text(SPACE)
    started = init_ray(None)
    console = Console(file=io.StringIO(), width=200)
    try:
        result = run_sweep(prepare_space(work / "space.yaml"), SweepOptions(name="hz", workdir=work), console=console)
    finally:
        if started:
            ray.shutdown()
    (work / "console.txt").write_text(console.file.getvalue())
    study = optuna.load_study(study_name="hz", storage=f"sqlite:///{work / 'optuna.db'}")
    return work, result, study.trials


def test_a_horizon_sweep_of_tiny_completes_with_a_full_length_best(horizon_sweep):
    work, result, trials = horizon_sweep
    assert result.complete and result.exit_code == 0
    assert len(runs_at(trials, 0)) == 4  # budget.trials counts configs
    assert result.best.rung.index == 2 and result.best.rung.fidelity == 1.0
    assert result.best.final_val_loss == min(t.value for t in runs_at(trials, 2))
    best = load_config(str(result.best_config))
    assert best.schedule.num_iterations == 4 and best.optim.muon_lr == pytest.approx(result.best.params["optim.muon_lr"])


def test_the_console_names_each_run_s_rung_and_config(horizon_sweep):
    work, _, trials = horizon_sweep
    lines = [line for line in (work / "console.txt").read_text().splitlines() if re.match(r"\[\s*\d+/", line)]
    assert len(lines) == len(trials)
    for t in trials:
        r = rung(t)
        line = next(line for line in lines if re.search(rf"\] +#{t.number} ", line))
        assert f"rung {r.index} ({r.fidelity:g} of the run, config #{r.config_trial})" in line


def test_each_rung_runs_the_same_config_as_a_complete_run_at_its_horizon(horizon_sweep):
    work, _, trials = horizon_sweep
    for t in trials:
        r = rung(t)
        trial_dir = work / "sweeps" / "hz" / "trials" / f"trial_{t.number:04d}"
        overrides = (trial_dir / "overrides.txt").read_text().splitlines()
        steps = round(4 * r.fidelity)
        assert [o for o in overrides if o.startswith("schedule.num_iterations=")][-1] == f"schedule.num_iterations={steps}"
        assert t.params == trials[r.config_trial].params  # the same config as its rung-0 run
        assert t.state == T.COMPLETE and max(t.intermediate_values) == steps  # it ran to its own end


def test_each_promotion_was_in_the_best_half_of_its_rung_when_made(horizon_sweep):
    _, _, trials = horizon_sweep
    promoted = [t for t in trials if rung(t).index > 0]
    assert promoted
    for t in promoted:
        source = trials[rung(t).promoted_from]
        assert rung(source).index == rung(t).index - 1 and rung(source).config_trial == rung(t).config_trial
        # one trial at a time: the runs finished before this one was queued are those numbered before it
        before = [u for u in runs_at(trials, rung(source).index) if u.number < t.number]
        assert source in top(before, 2)


def test_the_best_half_of_each_finished_rung_went_on_once(horizon_sweep):
    _, _, trials = horizon_sweep
    for k in (0, 1):
        went_on = [rung(t).config_trial for t in runs_at(trials, k + 1)]
        assert sorted(went_on) == sorted(set(went_on))  # no config twice at a rung
        assert {rung(t).config_trial for t in top(runs_at(trials, k), 2)} <= set(went_on)


def test_a_sync_horizon_sweep_runs_exactly_the_planned_runs_rung_after_rung(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE.replace("reduction_factor: 2}", "reduction_factor: 2, promotion: sync}"))
    started = init_ray(None)
    try:
        result = run_sweep(prepare_space(tmp_path / "space.yaml"), SweepOptions(name="sync", workdir=tmp_path))
    finally:
        if started:
            ray.shutdown()
    trials = optuna.load_study(study_name="sync", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials
    assert result.exit_code == 0
    assert [len(runs_at(trials, k)) for k in (0, 1, 2)] == [4, 2, 1]
    for k in (0, 1):
        assert max(t.datetime_complete for t in runs_at(trials, k)) <= min(t.datetime_start for t in runs_at(trials, k + 1))
        assert {rung(t).config_trial for t in runs_at(trials, k + 1)} == {rung(t).config_trial for t in top(runs_at(trials, k), 2)}


def test_every_rung_s_run_is_an_mlflow_run_with_its_fidelity(horizon_sweep):
    work, _, trials = horizon_sweep
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    exp = client.get_experiment_by_name("hz")
    runs = client.search_runs([exp.experiment_id])
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {int(r.data.tags["optuna_trial"]): r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert len(parent) == 1 and sorted(children) == [t.number for t in trials]
    for t in trials:
        run, r = children[t.number], rung(t)
        assert run.data.tags["mlflow.parentRunId"] == parent[0].info.run_id
        assert float(run.data.params["fidelity"]) == r.fidelity and int(run.data.params["rung"]) == r.index
        assert run.data.tags["config_trial"] == str(r.config_trial)
        assert run.data.tags.get("promoted_from") == (None if r.index == 0 else str(r.promoted_from))
        assert run.data.params["schedule.num_iterations"] == str(round(4 * r.fidelity))
        assert run.data.metrics["final_val_loss"] == pytest.approx(t.value)


def test_the_report_shows_the_rank_correlation_of_consecutive_rungs_and_warns_on_few_configs(horizon_sweep):
    work, _, _ = horizon_sweep
    text = write_report("hz", f"sqlite:///{work / 'mlflow.db'}", out_dir=work / "report", log_to_mlflow=False).read_text()
    assert "## Horizon rungs" in text and "Spearman rho" in text
    assert "| 0 -> 1 | 0.25 -> 0.5 |" in text
    assert re.search(r"\*\*Warning\*\* \(rungs 0 -> 1\): only \d config\(s\) ran at both .* cannot be trusted", text)


# ---------------------------------------------------------------------------------------
# SIGKILL of the driver, then --resume


def test_a_sigkilled_horizon_sweep_resumes_with_no_run_or_promotion_lost_or_duplicated(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    sweep = [sys.executable, "-m", "orchestrator.cli", "sweep", str(tmp_path / "space.yaml"), "--name", "hzk"]
    with open(tmp_path / "killed_driver.log", "w") as log:
        driver = subprocess.Popen(sweep, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # killed once a promotion has been queued and a run is under way
        deadline = time.time() + 240
        while time.time() < deadline:
            try:
                trials = optuna.load_study(study_name="hzk", storage=storage).trials
            except KeyError:
                trials = []
            if any(rung(t) and rung(t).index > 0 for t in trials) and any(t.state == T.RUNNING for t in trials):
                break
            time.sleep(0.3)
        else:
            raise AssertionError((tmp_path / "killed_driver.log").read_text())
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        resumed = subprocess.run([*sweep, "--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=400)
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming sweep" in resumed.stdout

    trials = optuna.load_study(study_name="hzk", storage=storage).trials
    interrupted = [t for t in trials if t.user_attrs.get("status") == "interrupted"]
    assert interrupted and all(t.state == T.FAIL for t in interrupted)
    kept = [t for t in trials if t not in interrupted]
    assert all(t.state == T.COMPLETE for t in kept), [(t.number, t.state) for t in trials]
    placed = [(rung(t).config_trial, rung(t).index) for t in kept]
    assert sorted(placed) == sorted(set(placed)), "a config ran twice at one rung"
    assert len(runs_at(trials, 0)) == 4  # the budget's configs, none lost, none extra
    for t in interrupted:  # re-run at its rung, for its config
        retry = next(u for u in kept if u.user_attrs.get("retry_of") == t.number)
        assert rung(retry) == rung(t) and retry.params == t.params
    for k in (0, 1):
        went_on = {rung(t).config_trial for t in runs_at(trials, k + 1)}
        assert {rung(t).config_trial for t in top(runs_at(trials, k), 2)} <= went_on
    assert runs_at(trials, 2), "no config reached the full length"

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("hzk")
    children = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    numbers = [int(r.data.tags["optuna_trial"]) for r in children]
    assert sorted(numbers) == sorted(set(numbers)), "an Optuna trial has two MLflow runs"
    by_number = {int(r.data.tags["optuna_trial"]): r for r in children}
    for t in kept:
        assert by_number[t.number].data.params["fidelity"] == str(rung(t).fidelity)
        assert by_number[t.number].data.tags["status"] == "completed"
