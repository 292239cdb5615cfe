"""`--json` on the commands that print a verdict or a table of runs: `speedrun sweep` and
`speedrun ablate` print one JSON object on stdout (orchestrator/result_json.py) and their progress
on stderr, through the real CLI, Ray, trainer runs and stores (2 steps each)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

pytestmark = pytest.mark.slow

BASE = """\
base:
  config: tiny
  set: {eval.every: 2, data.val_tokens: 2048}
resources: {gpus: 0, cpus: 1}
"""


def speedrun(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_sweep_json_is_the_sweep_s_outcome_and_agrees_with_the_study(tmp_path):
    (tmp_path / "space.yaml").write_text(BASE + """\
params:
  optim.muon_lr: {float: [0.01, 0.1], log: true}
budget: {trials: 2, steps: 2}
sampler: {name: random, seed: 0}
""")
    done = speedrun(tmp_path, "sweep", "space.yaml", "--name", "j", "--json")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)  # stdout holds the object alone: the progress went to stderr
    study = optuna.load_study(study_name="j", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert got["complete"] and got["exit_code"] == 0 and got["best"]["number"] == study.best_trial.number
    assert got["best"]["objective"] == pytest.approx(study.best_value)
    assert sorted(t["number"] for t in got["trials"]) == [0, 1] and Path(got["best_config"]).is_file()
    assert "trials, best final_val_loss first" in done.stderr


def test_ablate_json_adds_the_effects_the_table_prints(tmp_path):
    (tmp_path / "abl.yaml").write_text(BASE + """\
variants:
  gelu: {model.relu_squared: false}
seeds: 2
budget: {steps: 2}
""")
    done = speedrun(tmp_path, "ablate", "abl.yaml", "--json")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["kind"] == "ablation" and len(got["trials"]) == 4
    (effect,) = got["effects"]
    assert effect["variant"] == "gelu" and effect["n_pairs"] == 2
    assert f"{effect['difference']:+.4f}" in done.stderr  # the effect table, on stderr
