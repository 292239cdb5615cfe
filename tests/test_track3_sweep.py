"""The optimization track end to end: a fixture script in the track's shape
(tests/fixtures_script/track3/, the baseline's knobs, seeded by $SPEEDRUN_SEED, val loss printed
in seconds-format lines) swept with 2 seeds per config (`budget.seeds`) by `steps_to_target`, then
`promote --track 3`, on a real local Ray with real MLflow and Optuna sqlite stores. The objective
must be what the track's validity rule says on the losses the runs printed, and the submission
folder's checks what `record check` / `record compare` say on the files it wrote.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from analysis.track3 import pairwise, validity
from orchestrator.promote import promote
from orchestrator.submission import Against
from orchestrator.sweep import SweepOptions, prepare_space, run_sweep
from search_spaces import SpaceError

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "fixtures_script" / "track3" / "train_gpt_simple.py"
TARGET, MARGIN, SEEDS = 5.2, 0.004, 2
SPACE = f"""\
base:
  script: {SCRIPT}
  set: {{train_steps: 16}}
params:
  optimizer2.lr: {{float: [0.1, 0.6], log: true}}
objective: {{metric: steps_to_target, target: {TARGET}}}
budget: {{trials: 2, seeds: {SEEDS}}}
sampler: {{name: random, seed: 0}}
resources: {{gpus: 0, cpus: 1}}
"""
VAL_LINE = re.compile(r"^step:(\d+)/\d+ val_loss:([\d.]+)")


@pytest.fixture(scope="module")
def seeded(local_ray, tmp_path_factory):
    work = tmp_path_factory.mktemp("seeds")
    (work / "trainer").symlink_to(REPO / "trainer")  # the script reads trainer/fixtures/ from its working directory
    (work / "space.yaml").write_text(SPACE)
    old = Path.cwd()
    os.chdir(work)
    try:
        result = run_sweep(prepare_space(work / "space.yaml"), SweepOptions(name="seeds", workdir=work))
    finally:
        os.chdir(old)
    return work, result


PRIOR_STEPS = 16  # a prior result: these losses at 16 steps


@pytest.fixture(scope="module")
def submission(seeded):
    """`promote --track 3` of the sweep: its best config again with 2 fresh seeds, against a prior result."""
    work, _ = seeded
    (work / "prior.txt").write_text("5.101\n5.099\n")
    old = Path.cwd()
    os.chdir(work)
    try:
        folder = promote("seeds", top_k=2, reseeds=2, options=SweepOptions(workdir=work), nproc=1, track=3,
                         against=Against(work / "prior.txt", PRIOR_STEPS))
    finally:
        os.chdir(old)
    return work, folder


def speedrun(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


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


# ---------------------------------------------------------------------------------------
# promote --track 3: the submission folder


def claimed_step(folder: Path) -> int:
    return int(re.match(r"# seeds: (\d+) steps", (folder / "README.md").read_text())[1])


def val_table(folder: Path) -> dict[int, list[float]]:
    lines = (folder / "val_losses.csv").read_text().split()
    return {int(row.split(",")[0]): [float(x) for x in row.split(",")[1:]] for row in lines[1:]}


def test_the_submission_claims_the_earliest_step_its_fresh_seeds_pass(submission):
    _, folder = submission
    table = val_table(folder)
    step = claimed_step(folder)
    assert validity(table[step], TARGET).passes
    assert not any(validity(losses, TARGET).passes for s, losses in table.items() if s < step)


def test_record_check_agrees_with_the_submission_on_the_files_it_wrote(submission):
    _, folder = submission
    step = claimed_step(folder)
    at = speedrun(folder, "record", "check", "val_losses.csv", "--track", "3", "--step", str(step),
                  "--target", str(TARGET), "--json")
    assert at.returncode == 0, at.stdout + at.stderr
    earliest = speedrun(folder, "record", "check", "val_losses.csv", "--track", "3", "--target", str(TARGET), "--json")
    assert earliest.returncode == 0 and str(step) in earliest.stdout


def test_the_pairwise_check_in_the_readme_is_record_compare_s(submission):
    _, folder = submission
    step = claimed_step(folder)
    table = val_table(folder)
    done = speedrun(folder, "record", "compare", "val_losses.csv", "against.txt", "--track", "3",
                    "--steps", str(step), str(PRIOR_STEPS), "--json")
    assert done.returncode in (0, 1), done.stderr
    lhs = json.loads(done.stdout)["lhs"]
    assert lhs == pytest.approx(pairwise(table[step], [5.101, 5.099], step, PRIOR_STEPS).lhs)
    assert f"{lhs:.4g}" in (folder / "README.md").read_text()


def test_the_submission_holds_the_script_and_one_log_per_seed_with_its_code(submission):
    _, folder = submission
    script = (folder / "train_gpt_simple.py").read_text()
    logs = sorted((folder / "logs").glob("seed_*.txt"))
    assert [p.name for p in logs] == ["seed_1000.txt", "seed_1001.txt"]
    assert all(script in p.read_text() for p in logs)  # the track's rule 4: all code in the log
    assert (folder / "run.sh").stat().st_mode & 0o111 and (folder / "changes.diff").is_file()


@pytest.mark.parametrize("args, expected", [
    (["--track", "3", "--against-steps", "3250"], "--against and --against-steps go together"),
    (["--track", "3", "--against", "missing.txt", "--against-steps", "3250"], "missing.txt: no such file"),
    (["--track", "2"], "--track 2: expected 1"),
    (["--against", "prior.txt", "--against-steps", "16"], "add --track 3"),
])
def test_promote_refuses_what_a_track3_submission_cannot_be_before_any_run(tmp_path, args, expected):
    (tmp_path / "prior.txt").write_text("3.27\n3.28\n")
    done = speedrun(tmp_path, "promote", "any", *args)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and expected in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "sweeps").exists()
