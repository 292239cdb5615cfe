"""Sweeps on a multi-node Ray cluster: real Ray nodes started by the test on this one host
(`ray.cluster_utils.Cluster`: a head without GPUs and worker nodes that declare GPUs), real
MLflow and Optuna sqlite stores, the driver joining the cluster with `--address`. There are no
GPUs here: Ray still hands each trial GPU ids and sets CUDA_VISIBLE_DEVICES to them, and the
trainers run on the CPU.

- two-GPU trials run each on one node, under torchrun, on GPUs no other running trial holds,
  and every rank of the trainer sees its trial's GPUs in CUDA_VISIBLE_DEVICES;
- MLflow records where each trial ran (node and GPU ids);
- a trial that fits in the cluster's GPUs but on none of its nodes is refused before it starts;
- a worker node lost mid-trial: the trial is re-run on another node (once: MAX_TRIAL_RETRIES) and
  the sweep completes; the lost trial's trainer does not train on;
- `$DATA_DIR` in the data globs is each node's own (docs/cluster.md);
- a Ray Client address (ray://) is refused before anything starts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from ray.cluster_utils import Cluster

from orchestrator.sweep import MAX_TRIAL_RETRIES, SweepOptions, SweepSetupError, prepare_space, run_sweep

from processes import trainer_processes  # tests/processes.py

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


def left_running(work: Path, grace_s: float = 60) -> list[int]:
    """The trainers of the sweeps in `work` still running once they had `grace_s` to exit."""
    deadline = time.time() + grace_s
    while trainer_processes(work) and time.time() < deadline:
        time.sleep(0.5)
    return trainer_processes(work)


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
# one write() to the pipe both ranks share, so the two lines cannot interleave
os.write(1, f"rank {rank} CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}\\n".encode())
if rank == 0:
    arrived = Path(os.environ["ARRIVED"])  # each run has a working directory of its own
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
    """4 two-GPU trials on a cluster of two worker nodes with 4 GPUs each, all running at once;
    before them, the same sweep with 8 GPUs per trial, refused."""
    work = tmp_path_factory.mktemp("packed")
    (work / "train_gpt.py").write_text(RENDEZVOUS_SCRIPT)
    (work / "space.yaml").write_text(f"""\
base:
  script: {work / 'train_gpt.py'}
  env: {{ARRIVED: {work / 'arrived'}}}
params:
  lr: {{float: [0.1, 0.5]}}
budget: {{trials: 4}}
sampler: {{name: random, seed: 0}}
resources: {{gpus: 2, cpus: 1}}
""")
    cluster = start_cluster({"num_cpus": 2, "num_gpus": 4}, {"num_cpus": 2, "num_gpus": 4})
    try:
        workers = {node.node_id for node in cluster.worker_nodes}
        with pytest.raises(SweepSetupError) as too_big:  # 8 GPUs in the cluster, but 4 on each node
            run_sweep(prepare_space(work / "space.yaml", gpus_per_trial=8),
                      SweepOptions(name="too-big", address=cluster.address, workdir=work))
        result = run_sweep(prepare_space(work / "space.yaml"),
                           SweepOptions(name="packed", address=cluster.address, workdir=work))
        left = left_running(work)
    finally:
        cluster.shutdown()
    return work, result, workers, left, too_big.value


def test_two_gpu_trials_run_on_one_worker_node_each_under_torchrun(packed_sweep):
    work, result, workers, *_ = packed_sweep
    assert result.exit_code == 0 and len(result.records) == 4
    for rec in result.records:
        assert rec.status == "completed", rec.error
        assert rec.last["world_size"] == 2  # two ranks
        assert rec.last["node_id"] in workers and len(rec.last["gpu_ids"]) == 2


def test_trials_running_at_once_hold_disjoint_gpus(packed_sweep):
    _, result, workers, *_ = packed_sweep
    # the script's rendezvous makes all four trials run at once: two on each node's four GPUs
    by_node: dict[str, list[int]] = {}
    for rec in result.records:
        by_node.setdefault(rec.last["node_id"], []).extend(rec.last["gpu_ids"])
    assert set(by_node) == workers
    assert all(sorted(ids) == [0, 1, 2, 3] for ids in by_node.values()), by_node


def test_every_rank_of_a_trainer_sees_its_trial_s_gpus(packed_sweep):
    work, result, *_ = packed_sweep
    for rec in result.records:
        log = (work / "sweeps" / "packed" / "trials" / f"trial_{rec.number:04d}" / "trainer.log").read_text()
        seen = dict(re.findall(r"^rank (\d) CUDA_VISIBLE_DEVICES=(\S*)$", log, re.MULTILINE))
        assert seen == {r: ",".join(map(str, rec.last["gpu_ids"])) for r in ("0", "1")}, log


def test_mlflow_records_the_node_and_the_gpus_of_each_trial(packed_sweep):
    work, result, *_ = packed_sweep
    runs = {int(r.data.tags["optuna_trial"]): r for r in child_runs(work, "packed")}
    for rec in result.records:
        tags = runs[rec.number].data.tags
        assert tags["node_id"] == rec.last["node_id"] and tags["node_ip"] == rec.last["node_ip"]
        assert tags["gpu_ids"] == ",".join(map(str, rec.last["gpu_ids"]))


def test_no_trainer_outlives_a_cluster_sweep(packed_sweep):
    assert packed_sweep[3] == []


def test_a_trial_larger_than_every_node_is_refused_before_anything_is_recorded(packed_sweep):
    work, *_, too_big = packed_sweep
    # a trial's GPUs are on one node: with 4 per node, an 8-GPU trial would wait forever
    assert "needs 1 CPU(s) and 8 GPU(s) on one node" in str(too_big)
    assert "2 with 2 CPU(s) and 4 GPU(s)" in str(too_big), too_big
    assert "too-big" not in optuna.study.get_all_study_names(f"sqlite:///{work / 'optuna.db'}")


# ---------------------------------------------------------------------------------------
# A worker node lost mid-trial

# the shards come from each node's own DATA_DIR, as on nodes with local disks
TINY_TWO_RANKS = """\
base:
  config: tiny
  set:
    eval.every: 3
    data.train_files: $DATA_DIR/fixture_train_*.bin
    data.val_files: ${DATA_DIR}/fixture_val_*.bin
    data.val_tokens: 2048
params:
  optim.muon_lr: {float: [0.01, 0.1], log: true}
budget: {trials: 1, steps: 6}
sampler: {name: random, seed: 0}
resources: {gpus: 2, cpus: 1}
"""


def wait_for_event(events: Path, kind: str, timeout: float = 180) -> None:
    """Until the trainer writing `events` has written an event of `kind`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if events.is_file() and f'"event": "{kind}"' in events.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"no {kind} event in {events} within {timeout:.0f} s")


def add_node_with_data(cluster: Cluster, data_dir: Path, **resources):
    """A node whose processes have DATA_DIR set (as `DATA_DIR=... ray start --address ...` does),
    with a copy of the fixture shards there."""
    data_dir.mkdir()
    for shard in (Path(__file__).parents[1] / "trainer" / "fixtures").glob("fixture_*.bin"):
        shutil.copy(shard, data_dir)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DATA_DIR", str(data_dir))
        return cluster.add_node(**resources)


@pytest.fixture(scope="module")
def lost_node_sweep(tmp_path_factory):
    """`speedrun sweep --address` of one trial with one GPU node; while the trial trains there, a
    second GPU node joins and the first is killed (SIGKILL of its raylet and workers, as in a
    crash) and its disk is gone. The driver has no DATA_DIR; each node has its own."""
    work = tmp_path_factory.mktemp("lost")
    (work / "space.yaml").write_text(TINY_TWO_RANKS)
    cluster = start_cluster()
    doomed = add_node_with_data(cluster, work / "doomed-disk", num_cpus=1, num_gpus=2)
    cmd = [sys.executable, "-m", "orchestrator.cli", "sweep", str(work / "space.yaml"), "--name", "lost",
           "--address", cluster.address]
    driver_env = {k: v for k, v in os.environ.items() if k != "DATA_DIR"}
    log = open(work / "driver.log", "w")
    driver = subprocess.Popen(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT, env=driver_env)
    try:
        events = work / "sweeps" / "lost" / "trials" / "trial_0000" / "events.jsonl"
        wait_for_event(events, "start")
        spare = add_node_with_data(cluster, work / "spare-disk", num_cpus=1, num_gpus=2)
        wait_for_event(events, "train")
        lost_at = time.time()
        cluster.remove_node(doomed, allow_graceful=False)
        shutil.rmtree(work / "doomed-disk")
        code = driver.wait(timeout=400)
        left = left_running(work)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        log.close()
        cluster.shutdown()
    return work, code, lost_at, spare.node_id, left


def test_a_trial_lost_with_its_node_is_rerun_on_another_node_and_the_sweep_completes(lost_node_sweep):
    work, code, lost_at, spare, _ = lost_node_sweep
    assert code == 0, (work / "driver.log").read_text()
    study = optuna.load_study(study_name="lost", storage=f"sqlite:///{work / 'optuna.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
    runs = child_runs(work, "lost")
    assert len(runs) == 1  # the re-run is the same trial, not a new one
    tags = runs[0].data.tags
    assert tags["status"] == "completed" and tags["node_id"] == spare
    assert tags["retries"] == str(MAX_TRIAL_RETRIES) == "1"
    first_event = json.loads((work / "sweeps" / "lost" / "trials" / "trial_0000" / "events.jsonl").read_text().splitlines()[0])
    assert first_event["time"] > lost_at  # it ran again from its start


def test_the_trainer_of_a_lost_node_does_not_train_on(lost_node_sweep):
    assert lost_node_sweep[4] == []


def test_each_trainer_reads_the_shards_under_its_own_node_s_data_dir(lost_node_sweep):
    work, code, *_ = lost_node_sweep
    # `$DATA_DIR` in the data globs was expanded by the trainer, from the node it ran on: the
    # driver never had DATA_DIR, and the first node's copy was gone when the trial ran again
    assert code == 0, (work / "driver.log").read_text()
    config = json.loads((work / "sweeps" / "lost" / "trials" / "trial_0000" / "events.jsonl").read_text().splitlines()[0])
    assert config["config"]["data"]["train_files"] == "$DATA_DIR/fixture_train_*.bin"


# ---------------------------------------------------------------------------------------
# Addresses


def test_a_ray_client_address_is_refused_before_anything_starts(tmp_path):
    (tmp_path / "space.yaml").write_text(TINY_TWO_RANKS)
    proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", "sweep", "space.yaml", "--address", "ray://head:10001"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: --address ray://head:10001: Ray Client (ray://) is not supported"), proc.stderr
    assert "--address auto" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"]  # no stores, no sweeps/

