"""Specification of the warm trainer worker (trainer/worker.py, driven through orchestrator.launch):
one process runs trainer jobs one after another and gives each the results of a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.launch import WarmWorker
from trainer.events import STATUS_EXIT_CODES

REPO = Path(__file__).resolve().parents[1]
# 6 steps, validation at 0, 3 and 6; two warm-up steps, which a reused worker skips (same shapes)
SHORT = [
    "--config", "tiny",
    "--set", "schedule.num_iterations=6", "--set", "eval.every=3", "--set", "data.val_tokens=4096",
    "--set", "runtime.threads=1", "--set", "runtime.warmup_steps=2",
]  # fmt: skip
# a different trial before: another seed, learning rate and initialisation (same module: kept)
OTHER = ["--set", "runtime.seed=1", "--set", "optim.muon_lr=0.01", "--set", "model.init_scale=0.3"]


def events(path: Path, kind: str) -> list[dict]:
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["event"] == kind]


def val_losses(path: Path) -> dict[int, float]:
    return {e["step"]: e["val_loss"] for e in events(path, "val")}


@pytest.fixture
def worker(tmp_path):
    w = WarmWorker(REPO, log=tmp_path / "worker.log")
    yield w
    w.close()


def run_job(worker: WarmWorker, tmp_path: Path, name: str, *extra: str) -> tuple[int, Path]:
    path = tmp_path / f"{name}.jsonl"
    code = worker.submit([*SHORT, *extra, "--events", str(path)], tmp_path / f"{name}.log").wait(None)
    return code, path


def test_a_reused_worker_gives_the_val_losses_of_a_fresh_process(worker, tmp_path):
    assert run_job(worker, tmp_path, "before", *OTHER)[0] == 0
    code, reused = run_job(worker, tmp_path, "reused")
    fresh = tmp_path / "fresh.jsonl"
    subprocess.run([sys.executable, "-m", "trainer", *SHORT, "--events", str(fresh)], cwd=REPO, check=True,
                   capture_output=True)
    assert code == 0
    assert events(reused, "start")[0]["process_runs"] == 1
    assert events(reused, "start")[0]["weights_restored"] is False  # another seed and init: built
    assert events(reused, "warmup")[0]["skipped"] is True
    assert val_losses(reused) == val_losses(fresh)
    assert val_losses(reused) != val_losses(tmp_path / "before.jsonl")


def test_a_run_with_the_last_run_s_seed_and_init_restores_its_weights_and_scores_as_a_fresh_process(worker, tmp_path):
    assert run_job(worker, tmp_path, "before", "--set", "optim.muon_lr=0.01")[0] == 0  # only the optimizer differs
    code, reused = run_job(worker, tmp_path, "reused")
    fresh = tmp_path / "fresh.jsonl"
    subprocess.run([sys.executable, "-m", "trainer", *SHORT, "--events", str(fresh)], cwd=REPO, check=True,
                   capture_output=True)
    assert code == 0
    assert events(reused, "start")[0]["weights_restored"] is True
    assert val_losses(reused) == val_losses(fresh)
    assert val_losses(reused) != val_losses(tmp_path / "before.jsonl")


def test_a_job_stopped_by_sigterm_ends_stopped_and_the_worker_runs_the_next(worker, tmp_path):
    path = tmp_path / "long.jsonl"
    run = worker.submit([*SHORT, "--set", "schedule.num_iterations=1000", "--events", str(path)], tmp_path / "long.log")
    while not (path.exists() and events(path, "train")):
        assert run.poll() is None, (tmp_path / "long.log").read_text()
        time.sleep(0.1)
    assert run.stop() == STATUS_EXIT_CODES["stopped"]
    assert events(path, "end")[0]["status"] == "stopped"
    assert run_job(worker, tmp_path, "next")[0] == 0


def test_bad_input_is_answered_with_exit_code_2_and_the_worker_runs_the_next(worker, tmp_path):
    code, _ = run_job(worker, tmp_path, "bad", "--set", "optim.muon_lr=-1")
    assert code == 2
    assert "muon_lr" in (tmp_path / "bad.log").read_text()
    assert run_job(worker, tmp_path, "next")[0] == 0


def test_each_job_prints_to_its_own_log(worker, tmp_path):
    run_job(worker, tmp_path, "first")
    run_job(worker, tmp_path, "second")
    first, second = (tmp_path / "first.log").read_text(), (tmp_path / "second.log").read_text()
    assert first.count("val_loss:") == second.count("val_loss:") == 3


@pytest.mark.slow
def test_a_slot_s_trials_share_one_warm_worker_and_score_as_fresh_processes_do(tmp_path):
    import ray

    from orchestrator.sweep import SweepOptions, prepare_space, run_sweep

    space = tmp_path / "space.yaml"
    space.write_text("""\
base:
  config: tiny
  set: {eval.every: 2, data.val_tokens: 2048, runtime.threads: 1, runtime.warmup_steps: 1}
params:
  optim.muon_lr: {float: [0.01, 0.1], log: true}
budget: {trials: 3, steps: 4}
sampler: {name: random, seed: 0}
resources: {gpus: 0, cpus: 1}
""")
    stores = dict(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    ray.init(address="local", num_cpus=1, include_dashboard=False)  # one slot: the trials follow each other
    try:
        warm, fresh = (run_sweep(prepare_space(space), SweepOptions(name=mode, workdir=tmp_path, **stores,
                                                                     fresh_processes=mode == "fresh"))
                       for mode in ("warm", "fresh"))
    finally:
        ray.shutdown()
    assert [r.last.get("worker_runs") for r in warm.records] == [0, 1, 2]
    assert all("worker_runs" not in r.last for r in fresh.records)
    assert [r.final_val_loss for r in warm.records] == [r.final_val_loss for r in fresh.records]
    assert len({r.final_val_loss for r in warm.records}) == 3
