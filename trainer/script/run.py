"""Running a patched script folder and turning its console into the trainer's event stream.

A run lives in one directory, the events file's (or a temporary one):
  code/   the script's folder as the run sees it (trainer/script/folder.py `lay_out`): the
          patched script and modules, links to everything else; the records' scripts log their
          own code from here
  work/   the script's working directory (trainer/script/workdir.py): links to the user's
          `--workdir` entries, its relative data paths are its own, and a `logs/` of its own
The script runs under `python` (default: this interpreter; a record's own virtual environment
keeps its pinned torch) for one process, with torchrun's variables for one rank, as the records'
scripts read RANK and WORLD_SIZE, or `python -m torch.distributed.run --standalone` for several.
It runs in a process group of its own (torchrun and every rank included), which is stopped as
one: SIGTERM, then SIGKILL after STOP_GRACE_S; whatever of it is left once the script exits is
killed, so no rank outlives a run and no grandchild keeps its output pipe open.

Events (trainer/events.py, the built-in trainer's stream): `start` at the first step line, its
config {"script", "overrides", "schedule": {"num_iterations": M}} with M from `step:N/M`, so a
reader can compute progress; `train` and `val` per step line (step, losses, train_time_ms); and a
last `end` whose status is
  completed  the script exited 0 after its final `step:M/M val_loss:` line
  failed     it exited otherwise, or exited 0 short of that line (`error` starts "incomplete");
             `error`'s first line is its exception and the line of the script that raised it
  diverged   a loss was non-finite: the script is stopped there, as the trainer stops
  stopped    this process got SIGTERM (or SIGINT): forwarded to the script, which is waited for
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
from trainer.process import STOP_GRACE_S, die_with_parent
from trainer.script.failure import summarize
from trainer.script.folder import lay_out, open_folder, patched_files
from trainer.script.logparse import StepLine, parse_peak_memory, parse_step
from trainer.script.workdir import make_workdir

ERROR_TAIL_LINES = 30
ERROR_TAIL_CHARS = 4000
STDERR_KEPT_LINES = 400  # enough for a traceback through torch.compile's frames
POLL_S = 0.2
READER_JOIN_S = 5.0  # a reader still blocked after this holds a pipe a process outside the group keeps open


def run_script(script: str | Path, overrides: dict[str, Any], nproc: int = 1, events: str | None = None,
               workdir: str | Path = ".", python: str | None = None) -> str:
    """Patch the script's folder, run it to the end and write its events; returns the final status."""
    if nproc < 1:
        raise InputError(f"--nproc {nproc}: expected 1 or more processes")
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise InputError(f"--workdir {workdir}: no such directory")
    python = check_python(python)
    folder = open_folder(script)
    patched = patched_files(folder, overrides)
    with _run_dir(events) as directory:
        if (directory / "code").resolve() == folder.root.resolve():
            raise InputError(f"--events {events}: the run's code folder would be {folder.root} itself; put the events elsewhere")
        code = lay_out(folder, patched, directory / "code")
        cwd = make_workdir(workdir, directory / "work", patched[folder.script.name])
        writer = EventWriter(events)
        try:
            config = {"script": str(script), "overrides": overrides}
            return _Follower(writer, config, nproc, code.parent).run(script_command(code, nproc, python), cwd)
        finally:
            writer.close()


def check_python(python: str | None) -> str:
    """The interpreter to run the script under: `python` if it is one, else this one."""
    if python is None:
        return sys.executable
    path = Path(python).expanduser()
    if path.is_dir():  # a virtual environment
        path = path / "bin" / "python"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise InputError(f"--python {python}: not an executable; expected a Python interpreter or a virtual environment's folder")
    return str(path)


def script_command(path: Path, nproc: int, python: str = sys.executable) -> list[str]:
    """`python PATH` for one process, torchrun (`torch.distributed.run --standalone`) for several."""
    if nproc > 1:
        return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(path)]
    return [python, str(path)]


def script_env(nproc: int) -> dict[str, str]:
    """The environment of the script; for one process, what torchrun would set for one rank."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if nproc == 1:
        env.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(_free_port()))
    return env


@contextmanager
def _run_dir(events: str | None) -> Iterator[Path]:
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
    """One script process group: its console lines become events, and a stop request reaches it."""

    def __init__(self, writer: EventWriter, config: dict[str, Any], nproc: int, code_dir: Path):
        self.writer, self.config, self.nproc, self.code_dir = writer, config, nproc, code_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = False
        self.last: dict[str, int | float] = {"step": 0, "train_time_ms": 0.0}
        self.total: int | None = None
        self.finished = False  # the final `step:M/M val_loss:` line was printed
        self.peak_memory_mib: int | None = None
        self.stderr_kept: deque[str] = deque(maxlen=STDERR_KEPT_LINES)
        self.diverged = False
        self.stop_requested = False
        self.signalled_at: float | None = None  # when the script's group was sent SIGTERM

    def run(self, cmd: list[str], workdir: Path) -> str:
        self.proc = subprocess.Popen(cmd, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=script_env(self.nproc),
                                     preexec_fn=die_with_parent(), process_group=0)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self._on_stdout), daemon=True),
                   threading.Thread(target=self._read, args=(self.proc.stderr, self._on_stderr), daemon=True)]
        try:
            for reader in readers:
                reader.start()
            code = self._wait()
            self._signal_group(signal.SIGKILL)  # what the script left behind, holding a GPU or our pipes
            for reader in readers:
                reader.join(READER_JOIN_S)
        finally:
            self._signal_group(signal.SIGKILL)
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
        """The script's exit code; its group gets SIGKILL once it outlives STOP_GRACE_S after SIGTERM."""
        while True:
            try:
                return self.proc.wait(timeout=POLL_S)
            except subprocess.TimeoutExpired:
                if self.signalled_at is not None and time.monotonic() - self.signalled_at > STOP_GRACE_S:
                    self._signal_group(signal.SIGKILL)

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.proc.pid, signum)
        except ProcessLookupError:  # the group is empty
            pass

    def _status(self, code: int) -> str:
        if self.diverged:
            return "diverged"
        if self.stop_requested:
            return "stopped"
        return "completed" if code == 0 and self.finished else "failed"

    def _error(self, code: int) -> str:
        if code == 0:  # it exited cleanly, short of its final val line
            at = f"at step {self.last['step']}/{self.total}" if self.total else "before its first step line"
            return f"incomplete: the script exited 0 {at}, without its final `step:M/M val_loss:` line"
        what = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        tail = "".join(list(self.stderr_kept)[-ERROR_TAIL_LINES:])[-ERROR_TAIL_CHARS:].strip()
        exception = summarize(self.stderr_kept, self.code_dir)
        head = f"{exception} [{what}]" if exception else f"the script failed ({what})"
        return f"{head}\n{tail}" if tail else head

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stop_requested = True
        self._terminate()

    def _terminate(self) -> None:
        if self.signalled_at is None and self.proc.poll() is None:
            self.signalled_at = time.monotonic()
            self._signal_group(signal.SIGTERM)

    @staticmethod
    def _read(pipe: IO[bytes], handle: Callable[[str], None]) -> None:
        for raw in iter(pipe.readline, b""):
            handle(raw.decode("utf-8", errors="replace"))

    def _on_stderr(self, line: str) -> None:
        sys.stderr.write(line)
        sys.stderr.flush()
        self.stderr_kept.append(line)

    def _on_stdout(self, line: str) -> None:
        self.writer.console.write(line)
        self.writer.console.flush()
        step = parse_step(line)
        if step is None:
            peak = parse_peak_memory(line)
            self.peak_memory_mib = peak if peak is not None else self.peak_memory_mib
            return
        if not self.started:
            self.started, self.total = True, step.total
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
            self.finished = self.finished or step.step == step.total
            self.writer.emit("val", val_loss=step.val_loss, **fields)
        else:
            extra = {"train_loss": step.train_loss} if step.train_loss is not None else {}
            self.writer.emit("train", step_avg_ms=step.step_avg_ms, **fields, **extra)
