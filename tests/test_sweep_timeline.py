"""The per-trial timeline (orchestrator/trial.py): each trial's final result carries time_* keys.

A real sweep (local Ray, MLflow and Optuna sqlite stores in tmp_path) of two `tiny` trials of
2 steps. Only consistency is checked (present, finite, non-negative, the parts add up), never a
duration: timings belong in benchmarks (bench/sweep_overhead.py).
"""

from __future__ import annotations

import json
import math
import time

import pytest
import torch
from mlflow import MlflowClient

from orchestrator.sweep import SweepOptions, prepare_space, run_sweep
from orchestrator.trial import Timeline

STARTUP_PARTS = ["time_import_s", "time_data_s", "time_build_s"]
PROCESS_PARTS = ["time_startup_s", "time_compile_s", "time_train_s", "time_val_s", "time_exit_s"]
KEYS = {"time_spawn_s", *STARTUP_PARTS, *PROCESS_PARTS, "time_process_s", "time_trial_s"}
CLOCKS = 0.01  # s: stamps mix time.time() with the trainer's perf_counter() durations


@pytest.mark.slow
def test_each_trial_s_final_result_lays_out_its_timeline(tmp_path, monkeypatch):
    space_file = tmp_path / "space.yaml"
    space_file.write_text("""\
base:
  config: tiny
  set:
    eval.every: 1
    data.val_tokens: 1024
params:
  optim.muon_lr: {float: [0.01, 0.1], log: true}
budget: {trials: 2, steps: 2}
sampler: {name: random, seed: 0}
resources: {gpus: 0, cpus: 1}
""")
    monkeypatch.chdir(tmp_path)
    t0 = time.time()
    result = run_sweep(prepare_space(space_file), SweepOptions(name="timeline"))
    t1 = time.time()
    assert result.exit_code == 0 and len(result.records) == 2
    for rec in result.records:
        t = {k: rec.last[k] for k in KEYS if k in rec.last}
        assert set(t) == KEYS, rec.last
        assert all(math.isfinite(v) and v >= 0 for v in t.values()), t
        assert t["time_train_s"] == pytest.approx(rec.last["train_time_ms"] / 1000)
        assert sum(t[k] for k in STARTUP_PARTS) == pytest.approx(t["time_startup_s"])
        assert sum(t[k] for k in PROCESS_PARTS) <= t["time_process_s"] + CLOCKS
        assert t["time_spawn_s"] + t["time_process_s"] <= t["time_trial_s"] + CLOCKS
        assert t0 <= rec.last["started_at"] <= rec.last["started_at"] + t["time_trial_s"] <= t1

    # each trial's MLflow run holds its timeline as metrics and its environment fingerprint as tags
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("timeline")
    for run in client.search_runs([exp.experiment_id], filter_string="tags.status = 'completed'"):
        assert KEYS <= set(run.data.metrics), run.data.metrics
        assert run.data.tags["env.torch"] == torch.__version__ and run.data.tags["env.host"]

    # intermediate results (val events at steps 0 and 1) carry none of them
    paths = sorted((tmp_path / "sweeps" / "timeline").glob("tune*/*/result.json"))  # Tune's own log
    assert len(paths) == 2
    for path in paths:
        results = [json.loads(line) for line in path.read_text().splitlines()]
        assert [bool(KEYS & set(r)) for r in results] == [False] * (len(results) - 1) + [True]


def test_a_timeline_leaves_out_the_phases_that_did_not_happen():
    timeline = Timeline()
    timeline.mark("spawn")
    timeline.add({"event": "end", "time": time.time(), "status": "failed"})  # failed before `start`
    timeline.mark("exit")
    keys = timeline.keys(train_time_ms=0.0)
    assert set(keys) == {"time_spawn_s", "time_exit_s", "time_process_s", "time_trial_s", "started_at"}
