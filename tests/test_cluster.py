"""Sweeps on a multi-node Ray cluster: real Ray nodes started by the test on this one host
(`ray.cluster_utils.Cluster`: a head without GPUs and worker nodes that declare GPUs), real
MLflow and Optuna sqlite stores, the driver joining the cluster with `--address`. There are no
GPUs here: Ray still hands each trial GPU ids and sets CUDA_VISIBLE_DEVICES to them, and the
trainers run on the CPU.

- two-GPU trials run each on one node, under torchrun, on GPUs no other running trial holds,
  and every rank of the trainer sees its trial's GPUs in CUDA_VISIBLE_DEVICES;
- MLflow records where each trial ran (node and GPU ids);
- a worker node lost mid-trial: the trial is re-run on another node, once at most, and the
  sweep completes; the lost trial's trainer does not train on.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from ray.cluster_utils import Cluster

from orchestrator.sweep import MAX_TRIAL_RETRIES, SweepOptions, prepare_space, run_sweep

pytestmark = pytest.mark.slow

# Node deaths noticed within about a second instead of Ray's default of tens of seconds
FAST_NODE_DEATH = {"health_check_period_ms": 200, "health_check_failure_threshold": 3, "health_check_timeout_ms": 500}


def start_cluster(*workers: dict) -> Cluster:
    """A head node with no GPUs (the driver's node) and one worker node per `workers` entry."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0,
                                                             "_system_config": FAST_NODE_DEATH})
    for node in workers:
        cluster.add_node(**node)
    cluster.wait_for_nodes()
    return cluster


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains `text` (Linux /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def left_running(work: Path, grace_s: float = 60) -> list[int]:
    """The trainers of the sweeps in `work` still running once they had `grace_s` to exit."""
    deadline = time.time() + grace_s
    while processes_mentioning(str(work / "sweeps")) and time.time() < deadline:
        time.sleep(0.5)
    return processes_mentioning(str(work / "sweeps"))


def child_runs(work: Path, name: str):
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    exp = client.get_experiment_by_name(name)
    return [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags]


# ---------------------------------------------------------------------------------------
# Two-GPU trials on two four-GPU nodes

# A train_gpt.py stand-in: each rank prints the CUDA_VISIBLE_DEVICES it was started with; rank 0
# then waits until every trial's rank 0 has arrived, so all trials hold their GPUs at the same
# time, and logs a record-style run of two steps.
RENDEZVOUS_SCRIPT = """\
import os
import sys
import time
from pathlib import Path

lr = 0.5
trials = 4

rank = int(os.environ["RANK"])
print(f"rank {rank} CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}", flush=True)
if rank == 0:
    arrived = Path("arrived")
    arrived.mkdir(exist_ok=True)
    (arrived / str(os.getpid())).touch()
    deadline = time.time() + 180
    while len(list(arrived.iterdir())) < trials:
        if time.time() > deadline:
            sys.exit("the trials never ran all at once")
        time.sleep(0.1)
    for step in range(3):
        print(f"step:{step}/2 val_loss:{4 - lr * step:.4f} train_time:{step}ms step_avg:1.00ms", flush=True)
"""


@pytest.fixture(scope="module")
def packed_sweep(tmp_path_factory):
    """4 two-GPU trials on a cluster of two worker nodes with 4 GPUs each, all running at once."""
    work = tmp_path_factory.mktemp("packed")
    (work / "train_gpt.py").write_text(RENDEZVOUS_SCRIPT)
    (work / "space.yaml").write_text(f"""\
base:
  script: {work / 'train_gpt.py'}
params:
  lr: {{float: [0.1, 0.5]}}
budget: {{trials: 4}}
sampler: {{name: random, seed: 0}}
resources: {{gpus: 2, cpus: 1}}
""")
    cluster = start_cluster({"num_cpus": 2, "num_gpus": 4}, {"num_cpus": 2, "num_gpus": 4})
    try:
        workers = {node.node_id for node in cluster.worker_nodes}
        result = run_sweep(prepare_space(work / "space.yaml"),
                           SweepOptions(name="packed", address=cluster.address, workdir=work))
        left = left_running(work)
    finally:
        cluster.shutdown()
    return work, result, workers, left


def test_two_gpu_trials_run_on_one_worker_node_each_under_torchrun(packed_sweep):
    work, result, workers, _ = packed_sweep
    assert result.exit_code == 0 and len(result.records) == 4
    for rec in result.records:
        assert rec.status == "completed", rec.error
        assert rec.last["world_size"] == 2  # two ranks
        assert rec.last["node_id"] in workers and len(rec.last["gpu_ids"]) == 2


def test_trials_running_at_once_hold_disjoint_gpus(packed_sweep):
    _, result, workers, _ = packed_sweep
    # the script's rendezvous makes all four trials run at once: two on each node's four GPUs
    by_node: dict[str, list[int]] = {}
    for rec in result.records:
        by_node.setdefault(rec.last["node_id"], []).extend(rec.last["gpu_ids"])
    assert set(by_node) == workers
    assert all(sorted(ids) == [0, 1, 2, 3] for ids in by_node.values()), by_node


def test_every_rank_of_a_trainer_sees_its_trial_s_gpus(packed_sweep):
    work, result, _, _ = packed_sweep
    for rec in result.records:
        log = (work / "sweeps" / "packed" / "trials" / f"trial_{rec.number:04d}" / "trainer.log").read_text()
        seen = dict(re.findall(r"^rank (\d) CUDA_VISIBLE_DEVICES=(\S*)$", log, re.MULTILINE))
        assert seen == {r: ",".join(map(str, rec.last["gpu_ids"])) for r in ("0", "1")}, log


def test_mlflow_records_the_node_and_the_gpus_of_each_trial(packed_sweep):
    work, result, _, _ = packed_sweep
    runs = {int(r.data.tags["optuna_trial"]): r for r in child_runs(work, "packed")}
    for rec in result.records:
        tags = runs[rec.number].data.tags
        assert tags["node_id"] == rec.last["node_id"] and tags["node_ip"] == rec.last["node_ip"]
        assert tags["gpu_ids"] == ",".join(map(str, rec.last["gpu_ids"]))


def test_no_trainer_outlives_a_cluster_sweep(packed_sweep):
    assert packed_sweep[3] == []
