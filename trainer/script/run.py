"""Running a patched train_gpt.py and turning its console into the trainer's event stream.

The patched copy is written beside the events file as `train_gpt.py`, so it stays with the run
(the records' scripts also log their own code from it); without an events file it goes to a
temporary directory. The script runs in `workdir` (its relative data paths are its own), under
plain python for one process (with torchrun's variables for one rank, as the records' scripts read
RANK and WORLD_SIZE) or `torch.distributed.run --standalone` for several. Its stdout and stderr
go on to the console as they come.

Events (trainer/events.py, the built-in trainer's stream): `start` at the first step line, its
config {"script", "overrides", "schedule": {"num_iterations": M}} with M from `step:N/M`, so a
reader can compute progress; `train` and `val` per step line (step, losses, train_time_ms); and a
last `end` whose status is
  completed  the script exited 0
  failed     it exited otherwise; `error` holds the tail of its stderr
  diverged   a loss was non-finite: the script is stopped there, as the trainer stops
  stopped    this process got SIGTERM (or SIGINT): forwarded to the script, which is waited for
             (SIGKILL after STOP_GRACE_S)
and the exit code is the trainer's (STATUS_EXIT_CODES).
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from trainer.errors import InputError
from trainer.events import EventWriter
from trainer.script.knobs import read_script
from trainer.script.logparse import StepLine, parse_peak_memory, parse_step
from trainer.process import STOP_GRACE_S, die_with_parent
from trainer.script.patch import patch

ERROR_TAIL_LINES = 30
ERROR_TAIL_CHARS = 4000
POLL_S = 0.2


def run_script(script: str | Path, overrides: dict[str, Any], nproc: int = 1, events: str | None = None,
               workdir: str | Path = ".") -> str:
    """Patch the script, run it to the end and write its events; returns the final status."""
    if nproc < 1:
        raise InputError(f"--nproc {nproc}: expected 1 or more processes")
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise InputError(f"--workdir {workdir}: no such directory")
    patched = patch(read_script(script), overrides, str(script))
    with _copy_dir(events) as directory:
        copy = (directory / "train_gpt.py").resolve()
        if copy == Path(script).resolve():
            raise InputError(f"--events {events}: the patched copy would overwrite {script}; put the events elsewhere")
        copy.write_text(patched, encoding="utf-8", newline="")
        writer = EventWriter(events)
        try:
            config = {"script": str(script), "overrides": overrides}
            return _Follower(writer, config, nproc).run(script_command(copy, nproc), workdir)
        finally:
            writer.close()


def script_command(path: Path, nproc: int) -> list[str]:
    """`python PATH` for one process, torchrun (`torch.distributed.run --standalone`) for several."""
    if nproc > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(path)]
    return [sys.executable, str(path)]


def script_env(nproc: int) -> dict[str, str]:
    """The environment of the script; for one process, what torchrun would set for one rank."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if nproc == 1:
        env.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(_free_port()))
    return env


@contextmanager
def _copy_dir(events: str | None) -> Iterator[Path]:
    if events and events != "-":
        directory = Path(events).parent
        directory.mkdir(parents=True, exist_ok=True)
        yield directory
    else:
        with tempfile.TemporaryDirectory(prefix="speedrun_script_") as tmp:
            yield Path(tmp)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Follower:
    """One script process: its console lines become events, and a stop request reaches it."""

    def __init__(self, writer: EventWriter, config: dict[str, Any], nproc: int):
        self.writer, self.config, self.nproc = writer, config, nproc
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = False
        self.last: dict[str, int | float] = {"step": 0, "train_time_ms": 0.0}
        self.peak_memory_mib: int | None = None
        self.stderr_tail: deque[str] = deque(maxlen=ERROR_TAIL_LINES)
        self.diverged = False
        self.stop_requested = False
        self.signalled_at: float | None = None  # when the script was sent SIGTERM

    def run(self, cmd: list[str], workdir: Path) -> str:
        self.proc = subprocess.Popen(cmd, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=script_env(self.nproc),
                                     preexec_fn=die_with_parent())
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self._on_stdout), daemon=True),
                   threading.Thread(target=self._read, args=(self.proc.stderr, self._on_stderr), daemon=True)]
        try:
            for reader in readers:
                reader.start()
            code = self._wait()
            for reader in readers:
                reader.join()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        status = self._status(code)
        end: dict[str, Any] = {"status": status, **self.last, "exit_code": code}
        if status == "failed":
            end["error"] = self._error(code)
        if self.peak_memory_mib is not None:
            end["peak_memory_mib"] = self.peak_memory_mib
        self.writer.emit("end", **end)
        return status

    def _wait(self) -> int:
        """The script's exit code; SIGKILL once it outlives STOP_GRACE_S after SIGTERM."""
        while True:
            try:
                return self.proc.wait(timeout=POLL_S)
            except subprocess.TimeoutExpired:
                if self.signalled_at is not None and time.monotonic() - self.signalled_at > STOP_GRACE_S:
                    self.proc.kill()

    def _status(self, code: int) -> str:
        if self.diverged:
            return "diverged"
        if self.stop_requested:
            return "stopped"
        return "completed" if code == 0 else "failed"

    def _error(self, code: int) -> str:
        tail = "".join(self.stderr_tail)[-ERROR_TAIL_CHARS:].strip()
        what = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        return f"the script failed ({what}):\n{tail}" if tail else f"the script failed ({what})"

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stop_requested = True
        self._terminate()

    def _terminate(self) -> None:
        if self.signalled_at is None and self.proc.poll() is None:
            self.signalled_at = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)

    @staticmethod
    def _read(pipe: IO[bytes], handle: Callable[[str], None]) -> None:
        for raw in iter(pipe.readline, b""):
            handle(raw.decode("utf-8", errors="replace"))

    def _on_stderr(self, line: str) -> None:
        sys.stderr.write(line)
        sys.stderr.flush()
        self.stderr_tail.append(line)

    def _on_stdout(self, line: str) -> None:
        self.writer.console.write(line)
        self.writer.console.flush()
        step = parse_step(line)
        if step is None:
            peak = parse_peak_memory(line)
            self.peak_memory_mib = peak if peak is not None else self.peak_memory_mib
            return
        if not self.started:
            self.started = True
            config = {**self.config, "schedule": {"num_iterations": step.total}}
            self.writer.emit("start", world_size=self.nproc, config=config)
        self._emit_step(step)
        losses = [x for x in (step.val_loss, step.train_loss) if x is not None]
        if not all(math.isfinite(x) for x in losses):
            self.diverged = True
            self._terminate()

    def _emit_step(self, step: StepLine) -> None:
        self.last["step"] = step.step
        if step.train_time_ms is not None:
            self.last["train_time_ms"] = step.train_time_ms
        fields = {"step": step.step, "train_time_ms": step.train_time_ms}
        if step.val_loss is not None:
            self.writer.emit("val", val_loss=step.val_loss, **fields)
        else:
            extra = {"train_loss": step.train_loss} if step.train_loss is not None else {}
            self.writer.emit("train", step_avg_ms=step.step_avg_ms, **fields, **extra)
