"""`speedrun promote`: a real CPU sweep of `tiny`, its two best configs re-run with fresh seeds,
the winner picked by mean and written as a record folder whose run.sh reproduces it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from analysis.ablation import arms
from analysis.runs import load_sweep
from orchestrator.promote import FRESH_SEED_BASE, promote
from orchestrator.sweep import SweepOptions, prepare_space, run_sweep

pytestmark = pytest.mark.slow

SPACE = """\
base:
  config: tiny
  set: {eval.every: 2, data.val_tokens: 2048}
params:
  optim.muon_lr: {float: [0.01, 0.1], log: true}
budget: {trials: 3, steps: 4}
sampler: {name: random, seed: 0}
resources: {gpus: 0, cpus: 1}
"""


def test_promotion_picks_by_mean_and_its_record_folder_reruns_the_winner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(SPACE)
    run_sweep(prepare_space(tmp_path / "space.yaml"), SweepOptions(name="pr"))

    folder = promote("pr", top_k=2, reseeds=2, options=SweepOptions(), nproc=1)
    assert {p.name for p in folder.iterdir()} >= {"config.yaml", "run.sh", "README.md", "statistics.md", "environment.json"}

    # picked by the lowest mean over the fresh seeds
    promotion = load_sweep("pr-promote", f"sqlite:///{tmp_path / 'mlflow.db'}")
    means = {a.name: sum(t.final_val_loss for t in a.trials) / len(a.trials) for a in arms(promotion.trials)}
    assert len(means) == 2 and all(len(a.trials) == 2 for a in arms(promotion.trials))
    picked = re.search(r"Picked: arm `([^`]+)`", (folder / "statistics.md").read_text()).group(1)
    assert picked == min(means, key=means.get)
    winner = next(a for a in arms(promotion.trials) if a.name == picked)
    readme = (folder / "README.md").read_text()
    assert all(t.run_id in readme for t in winner.trials)
    assert "ttest_1samp(losses, 3.28, alternative='less')" in (folder / "statistics.md").read_text()
    assert json.loads((folder / "environment.json").read_text())["fingerprints"][0]["torch"]

    # run.sh re-runs the winning config: with the first fresh seed, the same final loss
    seed_loss = next(t.final_val_loss for t in winner.trials if t.searched["seed"] == FRESH_SEED_BASE)
    events = tmp_path / "rerun.jsonl"
    proc = subprocess.run([str(folder / "run.sh"), "--set", f"runtime.seed={FRESH_SEED_BASE}", "--events", str(events)],
                          env=dict(os.environ, PYTHON=sys.executable), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    vals = [json.loads(line) for line in events.read_text().splitlines() if '"event": "val"' in line]
    assert vals[-1]["val_loss"] == pytest.approx(seed_loss, abs=1e-3)  # thread counts may reorder float sums

    artifacts = {a.path for a in MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").list_artifacts(promotion.parent_id, "record")}
    assert "record/README.md" in artifacts and "record/run.sh" in artifacts
