"""Starting and stopping one trainer run as a subprocess (torchrun when it has several GPUs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import deque
from pathlib import Path

from trainer.process import STOP_GRACE_S, die_with_parent


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


def trial_command(target: str, overrides: list[str], events: str | Path, nproc: int = 1) -> list[str]:
    """The command of one trial: the trainer on a config, or `python -m trainer.script` on a `.py` script."""
    if not str(target).endswith(".py"):
        return trainer_command(target, overrides, events, nproc)
    sets = [arg for item in overrides for arg in ("--set", item)]
    return [sys.executable, "-m", "trainer.script", "--script", str(target), "--nproc", str(nproc),
            "--events", str(events), *sets]


class TrainerProcess:
    """One trainer subprocess; its stdout and stderr go to `log` (the console lines and any error)."""

    def __init__(self, cmd: list[str], cwd: str | Path, log: str | Path, env: dict[str, str] | None = None):
        self.cmd = cmd
        self.log = Path(log)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                preexec_fn=die_with_parent(),
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
