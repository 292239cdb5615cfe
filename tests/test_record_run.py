"""`speedrun record run`: a record attempt of the `tiny` preset on CPU (target adjusted to its
scale), interleaved with a baseline, ends with the verdict in the record folder and in MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from orchestrator.record import look_sizes, run_attempt
from orchestrator.sweep import SweepOptions
from trainer.config import load_config

pytestmark = pytest.mark.slow

QUICK = ["schedule.num_iterations=4", "eval.every=2", "data.val_tokens=2048"]
TINY_TARGET = 11.0  # tiny at 4 steps ends near 9.8 nats: clearly below, so the rule passes


def record_folder(root: Path, muon_lr: float) -> Path:
    folder = root / "records" / "2026-11-25_tiny"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(load_config("tiny", [*QUICK, f"optim.muon_lr={muon_lr}"]).to_yaml())
    return folder


def test_a_record_attempt_writes_its_verdict_into_the_folder_and_mlflow(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = record_folder(tmp_path, muon_lr=0.06)
    baseline = tmp_path / "base.yaml"
    baseline.write_text(load_config("tiny", QUICK).to_yaml())

    verdict = run_attempt(folder, runs=4, options=SweepOptions(), baseline=baseline, target=TINY_TARGET, looks=2)

    assert verdict.passed and verdict.n == 2  # passed at the first of two looks: stopped there
    results = json.loads((folder / "attempt" / "results.json").read_text())
    assert results["verdict"] == "pass" and results["looks"][0]["runs"] == 2 and len(results["looks"]) == 1
    assert "0.01/2 (Bonferroni)" in results["correction"]
    assert sorted(r["seed"] for r in results["runs"]) == [0, 1]
    text = (folder / "attempt" / "verdict.md").read_text()
    assert text.startswith("# Record attempt: PASS") and "Against the baseline" in text and "| record" in text
    assert len(list((folder / "attempt" / "logs").glob("*.log"))) == 4  # 2 seeds x (record, baseline)

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name(results["mlflow_experiment"])
    parent = client.search_runs([exp.experiment_id], filter_string="tags.`speedrun.role` = 'sweep'")[0]
    assert parent.data.tags["record_verdict"] == "pass"
    assert parent.data.metrics["record_pvalue"] == pytest.approx(results["pvalue"])
    assert "attempt/verdict.md" in {a.path for a in client.list_artifacts(parent.info.run_id, "attempt")}


def test_sequential_looks_grow_to_the_requested_runs():
    assert look_sizes(10, 3) == [4, 7, 10]
    assert look_sizes(10, 1) == [10]
    assert look_sizes(3, 5) == [2, 3]  # never a look of fewer than 2 runs
