"""Running a speedrun script through `python -m trainer.script`: its log becomes the trainer's events.

The runs use tests/fixtures_script/tiny_record/, a record-shaped script folder (train_gpt.py and the
triton_kernels.py it imports and reads) that really trains a tiny model on the shipped fixture
shards in a few seconds on a CPU.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from trainer.script.knobs import read_script
from trainer.script.logparse import StepLine, parse_peak_memory, parse_step
from trainer.script.patch import patch

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "fixtures_script" / "tiny_record" / "train_gpt.py"


def run_script(events: Path, *overrides: str, **popen: Any) -> subprocess.Popen:
    """`python -m trainer.script` on the tiny script, from the repository root (its data paths)."""
    cmd = [sys.executable, "-m", "trainer.script", "--script", str(TINY), "--events", str(events),
           "--workdir", str(REPO)]
    for item in overrides:
        cmd += ["--set", item]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def pids_running(script: Path) -> list[int]:
    """Processes whose command line runs `script` (this test's own patched copy)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(script).encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.parametrize(
    "line, expected",
    [
        ("step:0/1750 val_loss:10.8258 train_time:0ms step_avg:nanms", StepLine(0, 1750, 10.8258, None, 0.0, math.nan)),
        ("step:1/1750 train_loss:10.8258 train_time:24389ms step_avg:nanms",
         StepLine(1, 1750, None, 10.8258, 24389.0, math.nan)),
        ("step:125/1393 train_time:17608ms step_avg:140.86ms", StepLine(125, 1393, None, None, 17608.0, 140.86)),
        ("[default0]:step:2/8 val_loss:nan train_time:5ms step_avg:2.50ms", StepLine(2, 8, math.nan, None, 5.0, 2.5)),
        ("Running PyTorch 2.8.0 compiled for CUDA 12.8", None),
        ("step:3/8 is how the log counts", None),
    ],
)
def test_log_lines_of_every_era_parse(line, expected):
    got = parse_step(line)
    if expected is None:
        assert got is None
        return
    assert (got.step, got.total) == (expected.step, expected.total)
    for field in ("val_loss", "train_loss", "train_time_ms", "step_avg_ms"):
        a, b = getattr(got, field), getattr(expected, field)
        assert (a is None and b is None) or (math.isnan(a) and math.isnan(b)) or a == b, field


def test_peak_memory_line_parses():
    assert parse_peak_memory("peak memory allocated: 29892 MiB reserved: 45456 MiB") == 29892
    assert parse_peak_memory("step:1/2 train_time:1ms step_avg:1.00ms") is None


@pytest.mark.slow
def test_a_completed_run_streams_val_events_and_keeps_its_patched_copy(tmp_path):
    events = tmp_path / "trial" / "events.jsonl"
    proc = run_script(events, "Hyperparameters.num_iterations=6", "Hyperparameters.val_loss_every=3",
                      "TRAINING_STAGES[1].lr_mul=2.0")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    evs = read_events(events)
    kinds = [e["event"] for e in evs]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert evs[0]["config"] == {
        "script": str(TINY),
        "overrides": {"Hyperparameters.num_iterations": 6, "Hyperparameters.val_loss_every": 3,
                      "TRAINING_STAGES[1].lr_mul": 2.0},
        "schedule": {"num_iterations": 6},
    }
    vals = [e for e in evs if e["event"] == "val"]
    assert [v["step"] for v in vals] == [0, 3, 6]
    assert all(math.isfinite(v["val_loss"]) and v["train_time_ms"] >= 0 for v in vals)
    assert vals[-1]["val_loss"] < vals[0]["val_loss"]  # it really trains
    assert [e["step"] for e in evs if e["event"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert evs[-1]["status"] == "completed" and evs[-1]["step"] == 6
    assert "step:6/6 val_loss:" in out  # the script's console goes on to ours
    copy = events.parent / "code" / "train_gpt.py"
    assert copy.read_text() == patch(read_script(TINY), evs[0]["config"]["overrides"])


@pytest.mark.slow
def test_a_crashing_script_ends_failed_with_its_error(tmp_path):
    events = tmp_path / "events.jsonl"
    proc = run_script(events, "Hyperparameters.num_heads=3")  # 64 is not a multiple of 3
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    end = read_events(events)[-1]
    assert end["event"] == "end" and end["status"] == "failed"
    line = next(i for i, text in enumerate(TINY.read_text().splitlines(), 1) if "assert dim % num_heads" in text)
    assert end["error"].splitlines()[0] == (f"AssertionError: model_dim 64 is not a multiple of num_heads 3 "
                                            f"(train_gpt.py:{line}) [exit code 1]")
    assert "AssertionError" in err  # and the traceback reached the console


@pytest.mark.slow
def test_a_nan_loss_ends_diverged_and_stops_the_script(tmp_path):
    events = tmp_path / "events.jsonl"
    proc = run_script(events, "adam_params[1].lr=1e30", "Hyperparameters.num_iterations=1000",
                      "Hyperparameters.val_loss_every=1")
    proc.communicate(timeout=120)
    assert proc.returncode == 3
    evs = read_events(events)
    assert evs[-1]["status"] == "diverged" and evs[-1]["step"] < 1000
    assert any(e["event"] == "val" and e["val_loss"] is None for e in evs)  # nan is written as null


@pytest.mark.slow
def test_sigterm_forwards_to_the_script_and_ends_stopped(tmp_path):
    events = tmp_path / "events.jsonl"
    proc = run_script(events, "Hyperparameters.num_iterations=1000000", "Hyperparameters.val_loss_every=0")
    deadline = time.monotonic() + 60
    while not (events.exists() and '"train"' in events.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 4
    end = read_events(events)[-1]
    assert end["status"] == "stopped" and 0 < end["step"] < 1000000
    assert pids_running(tmp_path / "code" / "train_gpt.py") == []


def test_a_bad_address_exits_2_before_running_anything(tmp_path):
    events = tmp_path / "events.jsonl"
    proc = run_script(events, "Hyperparameters.num_iteration=3")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.startswith("error: no knob 'Hyperparameters.num_iteration'")
    assert "Hyperparameters.num_iterations (line" in err
    assert not events.exists() and not (tmp_path / "code").exists()


def test_a_script_that_exits_0_without_its_final_val_line_is_an_incomplete_failure(tmp_path):
    script = tmp_path / "train_gpt.py"
    script.write_text('print("step:0/5 val_loss:4.0 train_time:0ms step_avg:nanms")\n'
                      'print("step:1/5 train_time:3ms step_avg:3.00ms")\n')
    result = subprocess.run([sys.executable, "-m", "trainer.script", "--script", str(script),
                             "--events", str(tmp_path / "events.jsonl")], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 1
    end = read_events(tmp_path / "events.jsonl")[-1]
    assert end["status"] == "failed" and end["step"] == 1 and end["exit_code"] == 0
    assert end["error"].startswith("incomplete: the script exited 0 at step 1/5")
    assert script.read_text().startswith('print("step:0/5')  # events beside the script leave it as it was


def test_help_has_an_example():
    result = subprocess.run([sys.executable, "-m", "trainer.script", "--help"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0
    assert "python -m trainer.script --script train_gpt.py --nproc 8" in result.stdout
    assert "exit codes: 0 completed, 1 failed, 2 bad input, 3 diverged, 4 stopped" in result.stdout


# --- a sweep of a script ------------------------------------------------------------------------


@pytest.mark.slow
def test_speedrun_sweeps_a_script_with_asha_and_lands_its_val_curves_in_mlflow(tmp_path):
    from mlflow import MlflowClient

    data = REPO / "trainer" / "fixtures"
    space = tmp_path / "space.yaml"
    space.write_text(f"""\
base:
  script: {TINY}
  set:
    Hyperparameters.train_files: "{data}/fixture_train_*.bin"
    Hyperparameters.val_files: "{data}/fixture_val_*.bin"
    Hyperparameters.val_loss_every: 2
params:
  adam_params[0].lr: {{float: [0.01, 0.1], log: true}}
  TRAINING_STAGES[1].lr_mul: {{choice: [1.0, 1.5, 2.0]}}
budget: {{trials: 3}}
sampler: {{name: random, seed: 0}}
scheduler: {{name: asha, grace: 0.25, reduction_factor: 2, max_t: 1.0}}
resources: {{gpus: 0, cpus: 1}}
""")
    cmd = [sys.executable, "-m", "orchestrator.cli", "sweep", str(space), "--name", "script-sweep"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("script-sweep")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`mlflow.parentRunId` != ''")
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 3
    for run in children:
        assert run.data.tags["status"] in ("completed", "pruned"), run.data.tags
        curve = client.get_metric_history(run.info.run_id, "val_loss")
        assert len(curve) >= 2 and all(m.value > 0 for m in curve)
        assert "searched.adam_params.0.lr" in run.data.params and "knob.TRAINING_STAGES.1.lr_mul" in run.data.params
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"train_gpt.py", "config.yaml"} <= artifacts  # the patched script of this trial
    best = tmp_path / "sweeps" / "script-sweep" / "best"
    assert (best / "train_gpt.py").read_text() != TINY.read_text() and (best / "triton_kernels.py").is_file()


def test_a_script_space_with_an_unknown_knob_fails_at_its_line_with_the_closest_addresses(tmp_path):
    from orchestrator.sweep import prepare_space
    from search_spaces import SpaceError

    def errors(text: str) -> str:
        (tmp_path / "space.yaml").write_text(text)
        with pytest.raises(SpaceError) as info:
            prepare_space(tmp_path / "space.yaml")
        return str(info.value)

    msg = errors(f"base: {{script: {TINY}}}\nparams:\n  adam_params[0].lrr: {{float: [0.01, 0.1]}}\nbudget: {{trials: 2}}\n")
    assert "space.yaml:3: params.adam_params[0].lrr:" in msg and "adam_params[0].lr" in msg, msg
    msg = errors(f"base: {{script: {TINY}}}\nparams:\n  adam_params[0].lr: {{float: [0.01, 0.1]}}\nbudget: {{trials: 2, steps: 5}}\n")
    assert "space.yaml:4: budget.steps: a script has no schedule.num_iterations" in msg, msg


# --- no process of a run outlives it ------------------------------------------------------------

GRANDCHILD = """\
import os, signal, subprocess, sys, time
child = ("import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
         "open(os.environ['PIDFILE'] + str(os.getpid()), 'w').close(); time.sleep(1000)")
for _ in range(2):  # holding our stdout and stderr, deaf to SIGTERM, like a stuck rank
    subprocess.Popen([sys.executable, "-c", child])
while len([p for p in os.listdir(os.path.dirname(os.environ["PIDFILE"]))]) < 2:
    time.sleep(0.05)
print("step:0/1 val_loss:4.0 train_time:0ms step_avg:nanms", flush=True)
print("step:1/1 train_time:5ms step_avg:5.00ms", flush=True)
"""


def grandchild_script(tmp_path: Path, ending: str) -> tuple[Path, Path]:
    pids = tmp_path / "pids"
    pids.mkdir()
    script = tmp_path / "train_gpt.py"
    script.write_text(GRANDCHILD + ending)
    return script, pids


def alive(pids: Path) -> list[int]:
    out = []
    for pid in (int(p.name) for p in pids.iterdir()):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            out.append(pid)
    return out


def test_a_grandchild_holding_the_script_s_output_neither_hangs_the_run_nor_outlives_it(tmp_path):
    script, pids = grandchild_script(tmp_path, 'print("step:1/1 val_loss:3.9 train_time:5ms step_avg:5.00ms")\n')
    events = tmp_path / "run" / "events.jsonl"
    result = subprocess.run([sys.executable, "-m", "trainer.script", "--script", str(script), "--events", str(events)],
                            capture_output=True, text=True, cwd=REPO, env={**os.environ, "PIDFILE": f"{pids}/"},
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert read_events(events)[-1]["status"] == "completed"
    assert len(list(pids.iterdir())) == 2 and alive(pids) == []


@pytest.mark.slow
def test_a_stopped_script_whose_children_ignore_sigterm_leaves_no_process(tmp_path):
    script, pids = grandchild_script(tmp_path, "signal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(1000)\n")
    events = tmp_path / "run" / "events.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "trainer.script", "--script", str(script), "--events", str(events)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PIDFILE": f"{pids}/"})
    deadline = time.monotonic() + 60
    while not (events.exists() and '"train"' in events.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=60)  # SIGKILL to the script's group after the grace period
    assert proc.returncode == 4 and read_events(events)[-1]["status"] == "stopped"
    assert len(list(pids.iterdir())) == 2 and alive(pids) == []
