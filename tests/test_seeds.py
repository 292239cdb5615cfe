"""Seeds per config (`budget.seeds`) and the optimization track's `steps_to_target`, end to end:
a fixture script in the track's shape (tests/fixtures_script/track3/, seeded by $SPEEDRUN_SEED,
val loss printed in seconds-format lines) swept with 2 seeds per config on a real local Ray, with
real MLflow and Optuna sqlite stores. The objective must be what the track's validity rule says
on the losses the runs printed.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from orchestrator.sweep import SweepOptions, init_ray, prepare_space, run_sweep
from search_spaces import SpaceError

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "fixtures_script" / "track3" / "train_gpt_simple.py"
TARGET, MARGIN, SEEDS = 5.1, 0.004, 2
SPACE = f"""\
base:
  script: {SCRIPT}
  set: {{train_steps: 16}}
params:
  optimizer.lr: {{float: [0.005, 0.04], log: true}}
objective: {{metric: steps_to_target, target: {TARGET}}}
budget: {{trials: 2, seeds: {SEEDS}}}
sampler: {{name: random, seed: 0}}
resources: {{gpus: 0, cpus: 1}}
"""
VAL_LINE = re.compile(r"^step:(\d+)/\d+ val_loss:([\d.]+)")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    work = tmp_path_factory.mktemp("seeds")
    (work / "trainer").symlink_to(REPO / "trainer")  # the script reads trainer/fixtures/ from its working directory
    (work / "space.yaml").write_text(SPACE)
    started = init_ray(None)
    old = Path.cwd()
    os.chdir(work)
    try:
        result = run_sweep(prepare_space(work / "space.yaml"), SweepOptions(name="seeds", workdir=work))
    finally:
        os.chdir(old)
        if started:
            import ray

            ray.shutdown()
    return work, result


def printed_losses(run_dir: Path) -> dict[int, float]:
    """The val losses a run printed, by step (its trainer.log: the script's own console lines)."""
    lines = (run_dir / "trainer.log").read_text().splitlines()
    return {int(m[1]): float(m[2]) for m in map(VAL_LINE.match, lines) if m}


def rule_step(runs: list[dict[int, float]]) -> float:
    """The track's validity rule by hand: the earliest step whose mean passes (3.28 - mean) * n**0.5 >= 0.004."""
    for step in sorted(set.intersection(*(set(r) for r in runs))):
        mean = sum(r[step] for r in runs) / len(runs)
        if (TARGET - mean) * len(runs) ** 0.5 >= MARGIN:
            return float(step)
    return math.inf


def test_every_config_runs_once_per_seed_each_seed_its_own_run(seeded):
    work, result = seeded
    for rec in result.records:
        trial = work / "sweeps" / "seeds" / "trials" / f"trial_{rec.number:04d}"
        runs = [printed_losses(trial / f"seed_{s}") for s in range(SEEDS)]
        assert all(len(r) >= 3 for r in runs)
        assert runs[0] != runs[1]  # $SPEEDRUN_SEED differs, so do the runs


def test_steps_to_target_is_the_validity_rule_on_the_printed_losses(seeded):
    work, result = seeded
    for rec in result.records:
        trial = work / "sweeps" / "seeds" / "trials" / f"trial_{rec.number:04d}"
        want = rule_step([printed_losses(trial / f"seed_{s}") for s in range(SEEDS)])
        assert rec.status == "completed" and rec.objective == want, (rec.number, rec.objective, want)
    assert any(math.isfinite(r.objective) for r in result.records)


def test_each_seed_is_a_run_nested_under_its_trial_s_run_whose_curve_is_their_mean(seeded):
    work, result = seeded
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    exp = client.get_experiment_by_name("seeds")
    runs = client.search_runs([exp.experiment_id])
    for rec in result.records:
        trial_run = next(r for r in runs if r.data.tags.get("optuna_trial") == str(rec.number))
        seeds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == trial_run.info.run_id]
        assert sorted(r.data.tags["seed"] for r in seeds) == ["0", "1"]
        assert all(r.data.tags["status"] == "completed" and r.info.status == "FINISHED" for r in seeds)
        curves = [{m.step: m.value for m in client.get_metric_history(r.info.run_id, "val_loss")} for r in seeds]
        mean = {m.step: m.value for m in client.get_metric_history(trial_run.info.run_id, "val_loss")}
        assert mean and all(mean[s] == pytest.approx((curves[0][s] + curves[1][s]) / 2) for s in mean)


def test_the_optuna_trial_holds_the_objective_and_the_mean_curve(seeded):
    work, result = seeded
    study = optuna.load_study(study_name="seeds", storage=f"sqlite:///{work / 'optuna.db'}")
    for rec in result.records:
        t = study.trials[rec.number]
        assert t.value == rec.objective
        assert sorted(t.intermediate_values) == [s for s, _ in rec.curve]


def test_the_best_config_reaches_the_target_earliest(seeded):
    _, result = seeded
    assert result.best.objective == min(r.objective for r in result.records)


@pytest.mark.parametrize("extra, expected", [
    ("scheduler: asha\n", "budget.seeds > 1"),
    ("scheduler: asha\n", "forbid per-run early stopping"),
])
def test_per_run_pruning_is_refused_with_seeds_or_for_the_optimization_track(tmp_path, extra, expected):
    body = SPACE if "seeds" in expected else SPACE.replace(f"seeds: {SEEDS}", "seeds: 1")
    (tmp_path / "space.yaml").write_text(body + extra)
    with pytest.raises(SpaceError) as err:
        prepare_space(tmp_path / "space.yaml")
    assert any(expected in line for line in err.value.errors), err.value.errors
