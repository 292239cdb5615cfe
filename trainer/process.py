"""Child processes that do not outlive their parent, and sessions that leave no process behind."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Callable


def _linux_prctl():
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:  # not glibc Linux: no parent-death signal
        return None


_PRCTL = _linux_prctl()  # looked up here, never in a forked child
PR_SET_PDEATHSIG = 1
STOP_GRACE_S = 10.0  # SIGTERM, then this long for a clean `stopped` exit, then SIGKILL to its whole session


def _sigterm_on_parent_death() -> None:
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` for subprocess.Popen: the child gets SIGTERM when its parent dies (Linux).

    A trial's parent is a Ray worker that goes when the sweep's driver is killed; without this
    its trainer would train on, orphaned, holding the GPU. SIGTERM, not SIGKILL, so the trainer
    writes `end: stopped` (and torchrun forwards it to its ranks).
    """
    return _sigterm_on_parent_death if _PRCTL is not None else None


def session_members(sid: int) -> list[int] | None:
    """Pids of the live processes of session `sid` (Linux /proc); None where there is no /proc.

    Zombies are left out: they are dead already, and one whose parent does not reap it (an
    orphan under a container's init) would otherwise count as alive forever.
    """
    try:
        entries = os.scandir("/proc")
    except OSError:
        return None
    members = []
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:  # exited since the listing
                continue
            # the command name, in parentheses, may itself hold spaces and parentheses
            fields = stat[stat.rfind(b")") + 2:].split()
            if len(fields) > 3 and int(fields[3]) == sid and fields[0] not in (b"Z", b"X"):
                members.append(int(entry.name))
    return members


def kill_session(sid: int, sig: int = signal.SIGKILL, spare: int | None = None) -> set[int]:
    """Send `sig` to every process of session `sid` but `spare` (a leader ending its own session);
    returns the pids it reached.

    A trial runs in a session of its own, and its processes may sit in groups of their own
    inside it (a script's torchrun), so the session, not a process group, is what holds all
    of them. Without /proc only the leader's process group is signalled (nothing, with `spare`).
    """
    reached: set[int] = set()
    seen: set[int] = {spare} if spare is not None else set()
    # A member may fork between the listing and its signal: list again until nothing new shows up
    for _ in range(10):
        members = session_members(sid)
        if members is None:
            if spare is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(sid, sig)
            return reached
        new = [pid for pid in members if pid not in seen]
        if not new:
            break
        seen.update(new)
        for pid in new:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):  # exited since the listing
                continue
            reached.add(pid)
    return reached
