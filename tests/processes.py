"""Finding the processes a test left behind, what they listen on (Linux /proc), and `speedrun ui` as a
user runs it."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


def trainer_processes(workdir: Path) -> list[int]:
    """Pids of trainers (a run's process or a warm worker, `python -m trainer...`) working in
    `workdir`, the sweep's working directory (Linux /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit():
                continue
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if b"-m" in cmdline and any(arg.startswith(b"trainer") for arg in cmdline) \
                    and (proc / "cwd").resolve() == workdir.resolve():
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def _stat_fields(pid: int) -> list[bytes]:
    """/proc/PID/stat after the command name (which may hold spaces): state, ppid, pgrp, session, ..."""
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return stat[stat.rfind(b")") + 2:].split()


def descendants(pid: int) -> list[int]:
    """Pids of the live processes below `pid` (children, theirs, ...), whatever session they are in."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                children.setdefault(int(_stat_fields(int(proc.name))[1]), []).append(int(proc.name))
            except OSError:
                pass
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def session_of(pid: int) -> int | None:
    """The session id of process `pid`; None once it has exited."""
    try:
        return int(_stat_fields(pid)[3])
    except OSError:
        return None


def in_sessions(sessions: set[int]) -> list[int]:
    """Pids of the live (not zombie) processes of any of `sessions`."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                fields = _stat_fields(int(proc.name))
            except OSError:
                continue
            if int(fields[3]) in sessions and fields[0] not in (b"Z", b"X"):
                found.append(int(proc.name))
    return found


def listening(pids: list[int]) -> dict[int, list[tuple[str, int]]]:
    """The TCP addresses (host, port) each of `pids` listens on, from /proc/net/tcp and tcp6."""
    sockets: dict[str, tuple[str, int]] = {}  # socket inode -> its address
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                host, port = fields[1].split(":")
                sockets[fields[9]] = (_ip(host), int(port, 16))
    found: dict[int, list[tuple[str, int]]] = {}
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        found[pid] = [sockets[link[8:-1]] for link in links if link.startswith("socket:[") and link[8:-1] in sockets]
    return found


def _ip(hex_addr: str) -> str:
    """An address of /proc/net/tcp{,6} (32-bit words in host byte order) as text."""
    raw = b"".join(bytes.fromhex(hex_addr[i:i + 8])[::-1] for i in range(0, len(hex_addr), 8))
    return str(ipaddress.ip_address(raw))


# --- `speedrun ui` as a user runs it ------------------------------------------------------------

UI_START_TIMEOUT_S = 90  # mlflow server starts in ~10 s, more on a busy 2-core machine
UI_GONE_TIMEOUT_S = 20  # its processes stop in ~2 s on SIGTERM


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Ui:
    proc: subprocess.Popen
    port: int
    stdout: Path
    stderr: Path
    sessions: set[int]  # of `speedrun ui` and every process below it once it served

    def kill_leftovers(self) -> list[int]:
        """SIGKILL whatever of its sessions is still running; returns those pids."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        left = in_sessions(self.sessions)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        return left


def start_ui(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Ui:
    """`speedrun ui --port P ARGS` in `cwd`, in a session of its own (as a terminal runs a
    command), once its port answers HTTP."""
    port = free_port()
    out, err = cwd / "ui.out", cwd / "ui.err"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "ui", "--port", str(port), *args],
                                cwd=cwd, stdout=o, stderr=e, start_new_session=True, env=env)
    deadline = time.monotonic() + UI_START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):
                sessions = {s for pid in [proc.pid, *descendants(proc.pid)] if (s := session_of(pid)) is not None}
                return Ui(proc, port, out, err, sessions)
        except OSError:
            time.sleep(0.5)
    proc.kill()
    proc.wait()
    raise AssertionError(f"speedrun ui did not serve within {UI_START_TIMEOUT_S} s:\n{err.read_text()}")


def wait_gone(ui: Ui) -> list[int]:
    """Wait until no process of the UI's sessions is left and its port is free; the pids left then."""
    deadline = time.monotonic() + UI_GONE_TIMEOUT_S
    while (left := in_sessions(ui.sessions)) or port_open(ui.port):
        if time.monotonic() > deadline:
            return left
        time.sleep(0.2)
    return []


def wait_for_study(storage: str, name: str, ready, timeout: float = 240) -> None:
    """Wait until the trials of a driver's study satisfy `ready(trials)`."""
    import optuna

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if ready(optuna.load_study(study_name=name, storage=storage).trials):
                return
        except KeyError:  # the driver has not created the study yet
            pass
        time.sleep(0.5)
    raise AssertionError(f"the study never reached the awaited state in {timeout:.0f} s")
