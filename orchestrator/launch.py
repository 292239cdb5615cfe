"""Starting and stopping one trainer run as a subprocess (torchrun when it has several GPUs)."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections import deque
from pathlib import Path

STOP_GRACE_S = 10.0  # SIGTERM, then this long for the trainer's clean `stopped` exit, then SIGKILL


def trainer_args(config: str, overrides: list[str], events: str | Path | None = None) -> list[str]:
    """The trainer's arguments: `--config C --set K=V ... [--events PATH]`."""
    args = ["--config", config]
    for item in overrides:
        args += ["--set", item]
    return args + (["--events", str(events)] if events else [])


def trainer_command(config: str, overrides: list[str], events: str | Path | None = None, nproc: int = 1) -> list[str]:
    """`python -m trainer ...`, or torchrun (`torch.distributed.run`) with `nproc` ranks on this node."""
    if nproc > 1:
        head = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "trainer"]
    else:
        head = [sys.executable, "-m", "trainer"]
    return head + trainer_args(config, overrides, events)


def _linux_prctl():
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:  # not glibc Linux: no parent-death signal
        return None


_PRCTL = _linux_prctl()
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the process that started it dies.

    The parent is a Ray worker; when the sweep's driver is killed (SIGKILL), Ray takes its
    workers down, and without this their trainers would train on, orphaned, holding the GPU.
    SIGTERM (not SIGKILL) lets the trainer write `end: stopped` (torchrun forwards it).
    """
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


class TrainerProcess:
    """One trainer subprocess; its stdout and stderr go to `log` (the console lines and any error)."""

    def __init__(self, cmd: list[str], cwd: str | Path, log: str | Path):
        self.cmd = cmd
        self.log = Path(log)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                preexec_fn=_die_with_parent if _PRCTL is not None else None,
            )
        self.terminated = False

    def poll(self) -> int | None:
        return self.proc.poll()

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def terminate(self) -> None:
        """Ask the trainer to stop (SIGTERM: it finishes its step and writes `end: stopped`)."""
        if self.proc.poll() is None:
            self.terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, grace_s: float = STOP_GRACE_S) -> int:
        """SIGTERM, wait up to `grace_s`, then SIGKILL; returns the exit code."""
        self.terminate()
        try:
            return self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log_tail(self, lines: int = 30, chars: int = 4000) -> str:
        """The last lines the trainer printed (its error, for a failed run)."""
        try:
            with open(self.log, errors="replace") as f:
                tail = "".join(deque(f, maxlen=lines))
        except FileNotFoundError:
            return ""
        return tail[-chars:]
