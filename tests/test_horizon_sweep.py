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

import optuna
import pytest
import ray
from mlflow import MlflowClient
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from rich.console import Console

from analysis.report import write_report
from orchestrator.horizon import (
    due_audits,
    due_promotions,
    expected_runs,
    halving_space,
    line_search_step,
    promote,
    retune_step,
    rung_scores,
    sampler_caveat,
)
from orchestrator.progress import SweepConsole
from orchestrator.records import Rung, TrialRecord
from orchestrator.sweep import SweepOptions, init_ray, prepare_space, run_sweep
from search_spaces import RetuneSpec, SchedulerSpec, SpaceError, load_space
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


def trend_study(runs: list[tuple[float, float, float]]) -> optuna.Study:
    """Rung-0 runs [(lr, other, loss)] of a space with a log-scaled `lr` and a linear `other`."""
    study = optuna.create_study()
    dists = {"lr": FloatDistribution(1e-3, 1e-1, log=True), "other": FloatDistribution(0, 1)}
    for i, (lr, other, loss) in enumerate(runs):
        study.add_trial(create_trial(params={"lr": lr, "other": other}, distributions=dists, value=loss,
                                     user_attrs=Rung(0, RUNGS[0], i).attrs()))
    return study


def test_a_detrended_rung_promotes_on_what_the_parameter_s_linear_trend_leaves_over():
    # loss = 2 log10(lr) + 10 + other, `other` averaging 0.5 at each lr: a low lr looks best, the
    # lowest `other` is best once the lr's trend is taken out
    runs = [(lr, other, 2 * math.log10(lr) + 10 + other) for lr, other in
            [(0.001, 0.3), (0.001, 0.7), (0.01, 0.2), (0.01, 0.8), (0.1, 0.0), (0.1, 1.0)]]
    study = trend_study(runs)
    plain = SchedulerSpec(name="horizon", rungs=RUNGS, reduction_factor=3)
    detrended = plain.model_copy(update={"detrend": ["lr"]})
    ranges = {"lr": FloatDistribution(1e-3, 1e-1, log=True)}
    assert [t.number for t, _ in due_promotions(study.trials, plain)] == [0, 1]
    assert [t.number for t, _ in due_promotions(study.trials, detrended, ranges=ranges)] == [4, 2]


def test_a_detrended_rung_ranks_by_loss_until_it_has_enough_runs_to_fit():
    study = trend_study([(0.001, 0.9, 4.0), (0.01, 0.1, 5.0), (0.1, 0.0, 6.0), (0.05, 0.5, math.inf)])
    spec = SchedulerSpec(name="horizon", rungs=RUNGS, reduction_factor=2, detrend=["lr"])
    assert rung_scores(study.trials, spec, {"lr": FloatDistribution(1e-3, 1e-1, log=True)}) == {0: 4.0, 1: 5.0, 2: 6.0}


def test_audits_run_configs_the_lowest_rung_dropped_at_full_length_spread_over_its_ranking():
    spec = SchedulerSpec(name="horizon", rungs=RUNGS, reduction_factor=2, promotion="sync", audit=2)
    study = study_of({0: [(c, 10.0 - c) for c in range(8)]})  # config 7 best: 7, 6, 5, 4 go on; 3..0 dropped
    due = promote(study, spec, configs=8)
    audits = [(r.config_trial, r.index, r.fidelity, r.promoted_from, r.audit) for _, r in due if r.audit]
    assert audits == [(2, 2, 1.0, 2, True), (0, 2, 1.0, 0, True)]  # the 2nd and 4th of the 4 dropped
    assert sorted(r.config_trial for _, r in due if not r.audit) == [4, 5, 6, 7]
    assert promote(study, spec, configs=8) == []  # queued already: not again
    assert expected_runs(spec, 8) == 8 + 4 + 2 + 2


def test_audits_at_the_next_rung_of_a_two_rung_sweep_are_placed_once():
    spec = SchedulerSpec(name="horizon", rungs=[0.5, 1.0], reduction_factor=2, promotion="sync", audit=1)
    study = study_of({0: [(c, 10.0 - c) for c in range(4)]})
    assert [(r.config_trial, r.audit) for _, r in promote(study, spec, configs=4)] == [(3, False), (2, False), (0, True)]
    assert promote(study, spec, configs=4) == []


def test_audits_wait_for_the_lowest_rung_to_close_and_skip_diverged_runs():
    spec = SchedulerSpec(name="horizon", rungs=RUNGS, reduction_factor=2, promotion="sync", audit=3)
    study = study_of({0: [(0, 5.0), (1, 4.0), (2, math.inf), (3, 3.0)]})
    assert due_audits(study.trials, spec, configs=5) == []  # a config is still to be proposed
    assert [r.config_trial for _, r in due_audits(study.trials, spec, configs=4)] == [0]  # 1 and 3 go on, 2 diverged


def test_the_console_count_grows_when_async_promotion_runs_more_than_expected():
    view = SweepConsole(2, 1, "final_val_loss", Console(file=io.StringIO(), width=200))
    for n in range(3):
        view.trial_finished(TrialRecord(str(n), n, {}, [], status="completed", objective=5.0 - n,
                                        rung=Rung(0, RUNGS[0], n)), running=0)
    lines = view.console.file.getvalue().splitlines()
    assert [line.split("]")[0] for line in lines] == ["[1/2", "[2/2", "[3/3"]


# ---------------------------------------------------------------------------------------
# The full-length retune: a line search per parameter after the halving

LINE = RetuneSpec(params=["x"], factor=2.0, runs=3)


def test_a_line_search_first_steps_up_by_the_factor():
    assert line_search_step(0.1, 3.0, [], LINE, 0.01, 1.0) == pytest.approx(0.2)


def test_a_line_search_goes_on_up_while_that_improves():
    assert line_search_step(0.1, 3.0, [(0.2, 2.9)], LINE, 0.01, 1.0) == pytest.approx(0.4)


def test_a_line_search_turns_down_when_its_first_step_up_is_worse():
    assert line_search_step(0.1, 3.0, [(0.2, 3.1)], LINE, 0.01, 1.0) == pytest.approx(0.05)


def test_a_line_search_ends_at_a_worse_step_after_a_better_one():
    assert line_search_step(0.1, 3.0, [(0.2, 2.9), (0.4, 3.0)], LINE, 0.01, 1.0) is None
    assert line_search_step(0.1, 3.0, [(0.2, 3.1), (0.05, 3.2)], LINE, 0.01, 1.0) is None  # worse both ways


def test_a_line_search_ends_after_its_runs():
    assert line_search_step(0.1, 3.0, [(0.2, 2.9), (0.4, 2.8), (0.8, 2.7)], LINE, 0.01, 1.0) is None


def test_a_line_search_stays_in_the_range_and_turns_down_at_its_top():
    assert line_search_step(0.6, 3.0, [], LINE, 0.01, 1.0) == pytest.approx(1.0)  # clipped
    assert line_search_step(1.0, 3.0, [], LINE, 0.01, 1.0) == pytest.approx(0.5)  # nothing above
    assert line_search_step(0.6, 3.0, [(1.0, 2.9)], LINE, 0.01, 1.0) is None  # improved up to the edge


def full_length_study(runs: list[tuple[float, float]], retuned: list[tuple[str, float, float, int]] = ()) -> optuna.Study:
    """A closed halving over rungs 1/2 and 1 whose configs all reached the full length, `runs` =
    [(x, full-length loss)], then retune runs [(param, x, loss, the trial it moved from)]."""
    study = optuna.create_study()
    dist = {"x": FloatDistribution(0.01, 1.0, log=True), "y": FloatDistribution(0.01, 1.0, log=True)}

    def add(params: dict, loss: float, rung: Rung) -> None:
        study.add_trial(create_trial(params=params, distributions=dist, value=loss, user_attrs=rung.attrs()))

    for n, (x, loss) in enumerate(runs):
        add({"x": x, "y": 0.1}, loss + 1, Rung(0, 0.5, n))
    for n, (x, loss) in enumerate(runs):
        add({"x": x, "y": 0.1}, loss, Rung(1, 1.0, n, promoted_from=n))
    for name, x, loss, start in retuned:
        add({**study.trials[start].params, name: x}, loss, Rung(1, 1.0, len(study.trials), start, name))
    return study


ONE_RUNG = SchedulerSpec(name="horizon", rungs=[0.5, 1.0], promotion="sync",
                         retune=RetuneSpec(params=["x", "y"], factor=2.0, runs=1))
RANGES = {"x": FloatDistribution(0.01, 1.0, log=True), "y": FloatDistribution(0.01, 1.0, log=True)}


def test_the_retune_starts_from_the_best_full_length_run():
    study = full_length_study([(0.1, 3.0), (0.2, 2.5), (0.3, 2.8)])  # full-length runs #3, #4, #5
    params, attrs = retune_step(study.trials, ONE_RUNG, RANGES, configs=3)
    assert params == {"x": pytest.approx(0.4), "y": 0.1} and attrs == {"retune": "x", "promoted_from": 4}


def test_the_next_parameter_s_search_starts_from_the_best_run_of_the_searches_before_it():
    study = full_length_study([(0.1, 3.0), (0.2, 2.5)], retuned=[("x", 0.4, 2.4, 3)])  # the retune run is #4
    params, attrs = retune_step(study.trials, ONE_RUNG, RANGES, configs=2)
    assert params == {"x": pytest.approx(0.4), "y": pytest.approx(0.2)} and attrs == {"retune": "y", "promoted_from": 4}


def test_the_retune_waits_for_the_halving_and_for_its_own_run():
    study = full_length_study([(0.1, 3.0), (0.2, 2.5)])
    assert retune_step(study.trials, ONE_RUNG, RANGES, configs=3) is None  # a config is still to be proposed
    study.enqueue_trial({"x": 0.4, "y": 0.1}, user_attrs={"retune": "x", "promoted_from": 3})
    assert retune_step(study.trials, ONE_RUNG, RANGES, configs=2) is None  # its run is queued


def test_an_interrupted_retune_run_counts_as_its_retry():
    study = full_length_study([(0.1, 3.0), (0.2, 2.5)])
    dist = {"x": FloatDistribution(0.01, 1.0, log=True), "y": FloatDistribution(0.01, 1.0, log=True)}
    for state, loss, status in ((T.FAIL, None, "interrupted"), (T.COMPLETE, 2.4, "completed")):
        attrs = {**Rung(1, 1.0, len(study.trials), 3, "x").attrs(), "status": status}
        study.add_trial(create_trial(params={"x": 0.4, "y": 0.1}, distributions=dist, value=loss, state=state, user_attrs=attrs))
    params, _ = retune_step(study.trials, ONE_RUNG.model_copy(update={"retune": LINE}), RANGES, configs=2)
    assert params["x"] == pytest.approx(0.8)  # up again from the retry's better run


def test_a_held_parameter_keeps_its_value_through_the_halving_and_moves_in_retune_runs(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE.replace("reduction_factor: 2}", "reduction_factor: 2, retune: {params: [optim.adam_lr], hold: {optim.adam_lr: 0.01}}}"))
    define_by_run = halving_space(load_space(path))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        trial = study.ask()
        define_by_run(trial)
        assert trial.params["optim.adam_lr"] == 0.01
    assert len({t.params["optim.muon_lr"] for t in study.trials}) == 3
    study.enqueue_trial({"optim.muon_lr": 0.05, "optim.adam_lr": 0.02}, user_attrs={"retune": "optim.adam_lr", "promoted_from": 0})
    trial = study.ask()
    define_by_run(trial)
    assert trial.params == {"optim.muon_lr": 0.05, "optim.adam_lr": 0.02}
    assert trial.distributions["optim.adam_lr"] == FloatDistribution(0.002, 0.03, log=True)


def test_the_retune_ends_when_every_parameter_s_search_has():
    study = full_length_study([(0.1, 3.0), (0.2, 2.5)], retuned=[("x", 0.4, 2.6, 3), ("y", 0.2, 2.6, 3)])
    assert retune_step(study.trials, ONE_RUNG, RANGES, configs=2) is None


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
        ("{name: asha, retune: {params: [optim.adam_lr]}}", "scheduler: retune: only for horizon, not asha"),
        ("{name: horizon, retune: {params: [optim.adam_lrr]}}",
         "scheduler.retune.params[0]: 'optim.adam_lrr' is not a searched number of this space; expected one of: optim.muon_lr, optim.adam_lr (did you mean 'optim.adam_lr'?)"),
        ("{name: horizon, retune: {params: []}}", "scheduler.retune.params: got []; expected at least one searched parameter"),
        ("{name: horizon, retune: {params: [optim.adam_lr], factor: 1}}", "scheduler.retune.factor: got 1; expected greater than 1"),
        ("{name: horizon, retune: {params: [optim.adam_lr], hold: {optim.muon_lr: 0.02}}}",
         "scheduler.retune.hold.optim.muon_lr: 'optim.muon_lr' is not retuned; expected one of scheduler.retune.params: optim.adam_lr"),
        ("{name: horizon, retune: {params: [optim.adam_lr], hold: {optim.adam_lr: 0.05}}}",
         "scheduler.retune.hold.optim.adam_lr: 0.05 is outside 'optim.adam_lr''s range [0.002, 0.03]; expected a value in it"),
        ("{name: horizon, detrend: [optim.adamlr]}",
         "scheduler.detrend[0]: 'optim.adamlr' is not a searched number of this space; expected one of: optim.muon_lr, optim.adam_lr (did you mean 'optim.adam_lr'?)"),
        ("{name: asha, detrend: [optim.adam_lr]}", "scheduler: detrend: only for horizon, not asha"),
        ("{name: horizon, audit: -1}", "scheduler.audit: got -1; expected greater than or equal to 0"),
        ("{name: asha, audit: 2}", "scheduler: audit: only for horizon, not asha"),
    ],
    ids=["decreasing", "short-of-full", "zero", "one-rung", "factor", "asha-field", "horizon-field", "too-few-trials",
         "bad-fraction", "bad-promotion", "asha-promotion", "asha-retune", "retune-unknown", "retune-none", "retune-factor",
         "hold-not-retuned", "hold-out-of-range", "detrend-unknown", "asha-detrend", "audit-negative", "asha-audit"],
)
def test_a_bad_horizon_scheduler_is_reported_at_its_field(tmp_path, scheduler, expected):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE.replace("scheduler: {name: horizon, rungs: [0.25, 0.5, 1.0], reduction_factor: 2}",
                                  f"scheduler: {scheduler}"))
    with pytest.raises(SpaceError) as err:
        load_space(path)
    assert expected in str(err.value)
    assert "space.yaml:" in str(err.value)


@pytest.mark.parametrize(("param", "expected"), [
    ("{choice: [0.01, 0.02]}", "'optim.adam_lr' is not a float range; the retune multiplies a float"),
    ("{float: [0.0, 0.03]}", "'optim.adam_lr' ranges from 0; the retune multiplies it, so expected a range above 0"),
], ids=["choice", "from-zero"])
def test_a_retuned_parameter_must_be_a_float_range_above_zero(tmp_path, param, expected):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE.replace("optim.adam_lr: {float: [0.002, 0.03], log: true}", f"optim.adam_lr: {param}")
                    .replace("reduction_factor: 2}", "reduction_factor: 2, retune: {params: [optim.adam_lr]}}"))
    with pytest.raises(SpaceError) as err:
        load_space(path)
    assert f"scheduler.retune.params[0]: {expected}" in str(err.value)


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


@pytest.fixture(scope="module")
def sync_sweep(tmp_path_factory):
    """Sync halving, detrended in the Muon LR, with the Adam LR held at 0.01 and one dropped config
    audited at full length, then its retune (up to 2 full-length runs)."""
    work = tmp_path_factory.mktemp("sync")
    (work / "space.yaml").write_text(SPACE.replace(
        "reduction_factor: 2}", "reduction_factor: 2, promotion: sync, detrend: [optim.muon_lr], audit: 1, "
                                "retune: {params: [optim.adam_lr], runs: 2, hold: {optim.adam_lr: 0.01}}}"))
    started = init_ray(None)
    console = Console(file=io.StringIO(), width=200)
    try:
        result = run_sweep(prepare_space(work / "space.yaml"), SweepOptions(name="sync", workdir=work), console=console)
    finally:
        if started:
            ray.shutdown()
    (work / "console.txt").write_text(console.file.getvalue())
    return work, result, optuna.load_study(study_name="sync", storage=f"sqlite:///{work / 'optuna.db'}").trials


def halving(trials) -> list:
    return [t for t in trials if rung(t).retune is None and not rung(t).audit]


def test_a_sync_horizon_sweep_runs_exactly_the_planned_runs_rung_after_rung(sync_sweep):
    _, result, trials = sync_sweep
    trials = halving(trials)
    assert result.exit_code == 0
    assert [len(runs_at(trials, k)) for k in (0, 1, 2)] == [4, 2, 1]
    spec = SchedulerSpec(name="horizon", rungs=RUNGS, reduction_factor=2, detrend=["optim.muon_lr"])
    ranges = {"optim.muon_lr": FloatDistribution(0.01, 0.1, log=True)}
    for k in (0, 1):
        assert max(t.datetime_complete for t in runs_at(trials, k)) <= min(t.datetime_start for t in runs_at(trials, k + 1))
        scores = rung_scores(runs_at(trials, k), spec, ranges)  # rung 0 detrended, rung 1 too small to fit
        best = sorted(scores, key=lambda n: (scores[n], n))[:len(runs_at(trials, k)) // 2]
        assert {rung(t).config_trial for t in runs_at(trials, k + 1)} == {rung(t).config_trial for t in trials if t.number in best}


def test_the_audit_runs_a_config_the_lowest_rung_dropped_at_full_length_once_it_closed(sync_sweep):
    work, _, trials = sync_sweep
    (audit,) = [t for t in trials if rung(t).audit]
    promoted = {rung(t).config_trial for t in runs_at(trials, 1)}
    (origin,) = [t for t in runs_at(trials, 0) if t.number == rung(audit).promoted_from]
    assert (rung(audit).index, rung(audit).fidelity, rung(audit).config_trial) == (2, 1.0, origin.number)
    assert origin.number not in promoted and audit.params == origin.params and audit.state == T.COMPLETE
    assert audit.datetime_start >= max(t.datetime_complete for t in runs_at(trials, 0))
    overrides = (work / "sweeps" / "sync" / "trials" / f"trial_{audit.number:04d}" / "overrides.txt").read_text()
    assert "schedule.num_iterations=4\n" in overrides
    text = (work / "console.txt").read_text()
    assert "audit: 1 config(s) the lowest rung drops run at full length too" in text
    assert re.search(rf"\] +#{audit.number} .*audit at full length of config #{origin.number}", text)


def test_the_audit_run_is_tagged_in_mlflow_and_reported_against_the_lowest_rung(sync_sweep):
    work, _, trials = sync_sweep
    (audit,) = [t for t in trials if rung(t).audit]
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sync").experiment_id])
    tags = {int(r.data.tags["optuna_trial"]): r.data.tags for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert tags[audit.number]["audit"] == "True" and "audit" not in tags[trials[0].number]
    text = write_report("sync", f"sqlite:///{work / 'mlflow.db'}", out_dir=work / "report", log_to_mlflow=False).read_text()
    assert "Audit: configs the lowest rung dropped" in text
    assert re.search(rf"\| #{rung(audit).config_trial} +\| +\d of 4 \| .* \| audit +\| #{audit.number} ", text)


def test_every_run_of_the_halving_has_the_held_adam_lr(sync_sweep):
    work, _, trials = sync_sweep
    assert {t.params["optim.adam_lr"] for t in halving(trials)} == {0.01}
    assert len({t.params["optim.muon_lr"] for t in runs_at(trials, 0)}) == 4
    overrides = (work / "sweeps" / "sync" / "trials" / f"trial_{trials[0].number:04d}" / "overrides.txt").read_text()
    assert "optim.adam_lr=0.01\n" in overrides


def test_the_retune_line_searches_the_best_full_length_run_s_parameter_after_the_halving(sync_sweep):
    work, result, trials = sync_sweep
    moved = [t for t in trials if rung(t).retune is not None]
    before = [t for t in trials if rung(t).retune is None]  # the halving and the audit
    full = min(runs_at(before, 2), key=lambda t: (t.value, t.number))
    assert 1 <= len(moved) <= 2 and all(t.state == T.COMPLETE for t in moved)
    assert min(t.datetime_start for t in moved) >= max(t.datetime_complete for t in before)
    spec = RetuneSpec(params=["optim.adam_lr"], runs=2)
    for i, t in enumerate(moved):
        r = rung(t)
        assert (r.index, r.fidelity, r.config_trial, r.retune, r.promoted_from) == (2, 1.0, t.number, "optim.adam_lr", full.number)
        assert {k: v for k, v in t.params.items() if k != "optim.adam_lr"} == {k: v for k, v in full.params.items() if k != "optim.adam_lr"}
        tried = [(u.params["optim.adam_lr"], u.value) for u in moved[:i]]
        assert t.params["optim.adam_lr"] == pytest.approx(line_search_step(full.params["optim.adam_lr"], full.value, tried, spec, 0.002, 0.03))
        overrides = (work / "sweeps" / "sync" / "trials" / f"trial_{t.number:04d}" / "overrides.txt").read_text().splitlines()
        assert "schedule.num_iterations=4" in overrides and f"optim.adam_lr={t.params['optim.adam_lr']!r}" in overrides
    assert result.best.final_val_loss == min(t.value for t in [*runs_at(before, 2), *moved])


def test_the_console_names_each_retune_run_s_parameter_and_origin(sync_sweep):
    work, _, trials = sync_sweep
    text = (work / "console.txt").read_text()
    assert "then a full-length retune of optim.adam_lr" in text and "held at optim.adam_lr = 0.01 until then" in text
    assert "each shorter rung ranks its runs by loss less its linear trend in optim.muon_lr" in text
    for t in (t for t in trials if rung(t).retune is not None):
        assert re.search(rf"\] +#{t.number} .*retune of optim.adam_lr \(full length, from #{rung(t).promoted_from}\)", text)


def test_each_retune_run_is_an_mlflow_run_tagged_with_its_parameter_and_reported(sync_sweep):
    work, _, trials = sync_sweep
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sync").experiment_id])
    by_number = {int(r.data.tags["optuna_trial"]): r for r in runs if "mlflow.parentRunId" in r.data.tags}
    moved = [t for t in trials if rung(t).retune is not None]
    for t in moved:
        tags = by_number[t.number].data.tags
        assert (tags["retune"], tags["promoted_from"], tags["config_trial"]) == ("optim.adam_lr", str(rung(t).promoted_from), str(t.number))
    text = write_report("sync", f"sqlite:///{work / 'mlflow.db'}", out_dir=work / "report", log_to_mlflow=False).read_text()
    assert "Full-length retune" in text
    assert re.search(rf"\| #{moved[0].number} +\| optim.adam_lr +\| +#{rung(moved[0]).promoted_from} \|", text)


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
