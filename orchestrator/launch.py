"""Starting and stopping one trainer run: a subprocess of its own (torchrun when it has several
GPUs), or a job of a warm worker process (trainer/worker.py) that runs a slot's trials one by one."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from orchestrator.targets import is_script
from trainer.process import STOP_GRACE_S, die_with_parent, kill_session

DEFAULT_COMPILE_CACHE = "~/.cache/speedrun/compile"


def compile_cache_env(root: str | Path) -> dict[str, str]:
    """Inductor's and Triton's on-disk caches in `root/<this host>`: every trainer of a node starts
    from what earlier ones compiled. Concurrent trials may share them: both caches write an entry
    to a temporary file and rename it into place."""
    node = Path(root).expanduser() / socket.gethostname()
    return {"TORCHINDUCTOR_CACHE_DIR": str(node / "inductor"), "TRITON_CACHE_DIR": str(node / "triton")}


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


def trial_command(target: str, overrides: list[str], events: str | Path, nproc: int = 1,
                  python: str | None = None) -> list[str]:
    """The command of one trial: the trainer on a config, or `python -m trainer.script` on a script
    (run under `python`, default this interpreter)."""
    if not is_script(target):
        return trainer_command(target, overrides, events, nproc)
    sets = [arg for item in overrides for arg in ("--set", item)]
    interpreter = ["--python", python] if python else []
    return [sys.executable, "-m", "trainer.script", "--script", str(target), "--nproc", str(nproc),
            "--events", str(events), *interpreter, *sets]


class TrainerProcess:
    """One trainer subprocess, in a session of its own; its stdout and stderr go to `log` (the
    console lines and any error).

    No process of the session outlives the trainer: once poll(), wait() or stop() sees it exit,
    whatever it left running (torchrun's ranks, a script, their children) gets SIGKILL.
    """

    def __init__(self, cmd: list[str], cwd: str | Path, log: str | Path, env: dict[str, str] | None = None):
        self.cmd = cmd
        self.log = Path(log)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                preexec_fn=die_with_parent(), start_new_session=True,
            )
        self.terminated = False
        self.terminated_at: float | None = None  # time.monotonic() of the first SIGTERM
        self.killed = False

    def _exited(self) -> bool:
        # Asked without reaping: while the trainer is an unreaped zombie its pid, which is the
        # session's id, cannot be taken by a new process, so kill_session cannot hit a stranger
        if self.proc.returncode is not None:
            return True
        if not hasattr(os, "waitid"):
            return self.proc.poll() is not None
        try:
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:  # reaped already
            return True

    def poll(self) -> int | None:
        """The exit code once the trainer has exited (what it left of its session killed); None while it runs."""
        if self.proc.returncode is None and self._exited():
            kill_session(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return self.proc.returncode

    def wait(self, timeout: float | None) -> int | None:
        """The exit code once the trainer has exited, waiting up to `timeout` s; None while it runs."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.001
        while (code := self.poll()) is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            time.sleep(pause if left is None else min(pause, left))
            pause = min(2 * pause, 0.05)
        return code

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def terminate(self) -> None:
        """Ask the trainer to stop: SIGTERM to its process group (it finishes its step and writes `end: stopped`)."""
        if self.poll() is None:
            self.terminated = True
            if self.terminated_at is None:
                self.terminated_at = time.monotonic()
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL every process of the trainer's session (torchrun's ranks, a script's own group)."""
        if self.poll() is None:
            self.killed = True
            kill_session(self.proc.pid, signal.SIGKILL)

    def stop(self, grace_s: float = STOP_GRACE_S) -> int:
        """SIGTERM, wait up to `grace_s`, then SIGKILL the whole session; returns the exit code."""
        self.terminate()
        code = self.wait(grace_s)
        if code is None:
            self.kill()
            code = self.wait(None)
        return code

    def log_tail(self) -> str:
        """The last lines the trainer printed (its error, for a failed run)."""
        return log_tail(self.log)


def log_tail(path: Path, lines: int = 30, chars: int = 4000) -> str:
    """The last `lines` lines of a log, at most `chars` characters; empty if there is none."""
    try:
        with open(path, errors="replace") as f:
            tail = "".join(deque(f, maxlen=lines))
    except FileNotFoundError:
        return ""
    return tail[-chars:]


class WarmWorker:
    """A `python -m trainer.worker` process: trainer runs one after another, in one process that
    keeps its imports, CUDA context and compiled model between them. Its own output (anything
    printed outside a job) goes to `log`."""

    def __init__(self, cwd: str | Path, log: str | Path, env: dict[str, str] | None = None):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "trainer.worker"], cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=out, env=env, preexec_fn=die_with_parent(),
            )
        self.jobs = 0  # jobs handed to this process so far
        self._pending = b""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def submit(self, args: list[str], log: str | Path) -> WarmRun:
        """Start one trainer run (`python -m trainer`'s arguments); its console output goes to `log`."""
        run = WarmRun(self, Path(log), earlier_runs=self.jobs)
        self.proc.stdin.write((json.dumps({"args": args, "log": str(log)}) + "\n").encode())
        self.proc.stdin.flush()
        self.jobs += 1
        return run

    def reply(self, timeout: float | None) -> int | None:
        """The running job's exit code once the worker reports it (or the worker's own, negative
        for a signal, if it died first), waiting up to `timeout` s; None while the job runs."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._pending:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:  # the worker is gone without a reply
                return self.proc.wait()
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return int(json.loads(line)["exit"])

    def close(self, grace_s: float = STOP_GRACE_S) -> None:
        """End the worker: end of input, then SIGKILL if it has not exited within `grace_s`."""
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:  # it had exited already
                pass
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class WarmRun:
    """One job of a WarmWorker, stopped and waited for as a TrainerProcess is."""

    def __init__(self, worker: WarmWorker, log: Path, earlier_runs: int):
        self.worker, self.log, self.earlier_runs = worker, log, earlier_runs
        self.returncode: int | None = None
        self.terminated = False
        self.terminated_at: float | None = None  # time.monotonic() of the first SIGTERM
        self.killed = False

    def poll(self) -> int | None:
        return self.wait(0)

    def wait(self, timeout: float | None) -> int | None:
        """The exit code once the run has ended, waiting up to `timeout` s; None while it runs."""
        if self.returncode is None:
            self.returncode = self.worker.reply(timeout)
        return self.returncode

    def terminate(self) -> None:
        """Ask the run to stop (SIGTERM to the worker: the run stops at a step boundary)."""
        if self.poll() is None:
            self.terminated = True
            if self.terminated_at is None:
                self.terminated_at = time.monotonic()
            self.worker.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the worker, and the run with it (the slot's next trial starts a fresh worker)."""
        if self.poll() is None:
            self.killed = True
            self.worker.proc.kill()

    def stop(self, grace_s: float = STOP_GRACE_S) -> int:
        """SIGTERM, wait up to `grace_s`, then SIGKILL the worker; returns the run's exit code."""
        self.terminate()
        code = self.wait(grace_s)
        if code is None:
            self.kill()
            code = self.wait(None)
        return code

    def log_tail(self) -> str:
        return log_tail(self.log)
