"""Specification of stopping a trial: no process of a trainer outlives it (its session is killed
once it ends), and the time budget's SIGTERM turns into SIGKILL after the grace period.
Real processes and signals (Linux /proc)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import orchestrator.trial
from orchestrator.launch import TrainerProcess, WarmWorker
from orchestrator.trial import TrainerTrial
from trainer.process import session_members

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from Linux /proc")

REPO = Path(__file__).resolve().parents[1]

# argv: PIDFILE OWN_GROUP; ignores SIGTERM, then says so by writing its pid
GRANDCHILD = """
import os, signal, sys, time
if sys.argv[2] == "1":
    os.setpgid(0, 0)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(120)
"""

# argv: PIDFILE OWN_GROUP ON_SIGTERM (default / ignore / exit4) AFTER (sleep / exit)
# The trainer: starts the grandchild, waits until it is ready, then sleeps or exits 0.
# `ignore` notes each SIGTERM in PIDFILE.term and goes on, `exit4` exits as a stopped trainer does.
TRAINER = """
import os, signal, subprocess, sys, time
pidfile, own_group, on_sigterm, after = sys.argv[1:5]
def note(*_):
    with open(pidfile + ".term", "a") as f:
        f.write("TERM\\n")
    if on_sigterm == "exit4":
        os._exit(4)
if on_sigterm != "default":
    signal.signal(signal.SIGTERM, note)
subprocess.Popen([sys.executable, "-c", GRANDCHILD, pidfile, own_group])
while not os.path.exists(pidfile):
    time.sleep(0.01)
if after == "sleep":
    time.sleep(120)
""".replace("GRANDCHILD", repr(GRANDCHILD))


def alive(pid: int) -> bool:
    """Whether `pid` runs: a zombie is dead (the container's init may never reap an orphan)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(b")") + 2:].split()[0] not in (b"Z", b"X")


def gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def start(tmp_path):
    """`start(own_group, on_sigterm, after)`: a TrainerProcess running TRAINER, once its grandchild
    ignores SIGTERM; returns (process, grandchild pid, pidfile). Whatever is left is killed after."""
    started: list[tuple[TrainerProcess, Path]] = []

    def start(own_group: bool = False, on_sigterm: str = "default", after: str = "sleep"):
        pidfile = tmp_path / f"grandchild{len(started)}.pid"
        cmd = [sys.executable, "-c", TRAINER, str(pidfile), "1" if own_group else "0", on_sigterm, after]
        proc = TrainerProcess(cmd, cwd=tmp_path, log=tmp_path / f"trainer{len(started)}.log")
        started.append((proc, pidfile))
        deadline = time.monotonic() + 30
        while not pidfile.exists():
            assert time.monotonic() < deadline, proc.log_tail()
            time.sleep(0.02)
        return proc, int(pidfile.read_text()), pidfile

    yield start
    for proc, pidfile in started:
        proc.stop(grace_s=0)
        if pidfile.exists():
            pid = int(pidfile.read_text())
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("on_sigterm", ["default", "ignore"])
def test_stop_kills_a_grandchild_that_ignores_sigterm(start, on_sigterm):
    proc, grandchild, _ = start(on_sigterm=on_sigterm)
    t0 = time.monotonic()
    code = proc.stop(grace_s=0.5)
    assert code == (-signal.SIGTERM if on_sigterm == "default" else -signal.SIGKILL)
    assert time.monotonic() - t0 < 5
    assert gone(grandchild), "the grandchild outlived stop()"
    assert session_members(proc.proc.pid) == []


@pytest.mark.parametrize("on_sigterm", ["default", "ignore"])
def test_stop_kills_a_grandchild_in_a_process_group_of_its_own(start, on_sigterm):
    proc, grandchild, _ = start(own_group=True, on_sigterm=on_sigterm)
    code = proc.stop(grace_s=0.5)
    assert code == (-signal.SIGTERM if on_sigterm == "default" else -signal.SIGKILL)
    assert gone(grandchild), "the grandchild in its own process group outlived stop()"
    assert session_members(proc.proc.pid) == []


@pytest.mark.parametrize("own_group", [False, True])
def test_a_grandchild_left_behind_by_a_trainer_that_exited_is_killed_when_the_exit_is_seen(start, own_group):
    proc, grandchild, _ = start(own_group=own_group, after="exit")
    assert proc.wait(10) == 0
    assert gone(grandchild), "the grandchild outlived its trainer"
    assert proc.poll() == 0


@pytest.mark.parametrize("on_sigterm, code", [("ignore", -signal.SIGKILL), ("exit4", 4)])
def test_the_time_limit_sends_sigterm_then_kills_the_session_of_a_trainer_that_ignores_it(
        start, monkeypatch, on_sigterm, code):
    grace_s, time_s = 0.5, 0.3
    monkeypatch.setattr(orchestrator.trial, "STOP_GRACE_S", grace_s)
    proc, grandchild, pidfile = start(own_group=True, on_sigterm=on_sigterm)
    # the time-limit state of a trial, without Ray: step() calls this between event reads
    trial = TrainerTrial.__new__(TrainerTrial)
    trial.space = SimpleNamespace(budget=SimpleNamespace(time_s=time_s))
    trial.process, trial.time_limit_hit, trial.started = proc, False, time.monotonic()
    while proc.poll() is None:
        assert time.monotonic() - trial.started < 10, "the time limit never ended the trainer"
        trial._enforce_time_limit()
        proc.wait(0.05)
    elapsed = time.monotonic() - trial.started
    assert trial.time_limit_hit
    assert proc.returncode == code
    assert Path(f"{pidfile}.term").read_text() == "TERM\n"  # SIGTERM first, once
    assert proc.killed == (on_sigterm == "ignore")
    if proc.killed:
        assert time_s + grace_s < elapsed < time_s + grace_s + 3
    assert gone(grandchild)


def test_a_killed_warm_run_ends_its_worker(tmp_path):
    worker = WarmWorker(REPO, log=tmp_path / "worker.log")
    try:
        run = worker.submit(["--config", "tiny", "--events", str(tmp_path / "events.jsonl")], tmp_path / "run.log")
        run.kill()
        assert run.killed
        assert run.wait(10) == -signal.SIGKILL
        assert not worker.alive()
    finally:
        worker.close(grace_s=0)
