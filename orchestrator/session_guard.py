"""`python -m orchestrator.session_guard PARENT_PID CMD...`: CMD and everything it starts, gone
when the process that started the guard goes, however it goes.

    guard = subprocess.Popen(guarded(cmd), start_new_session=True, preexec_fn=die_with_parent())

A server such as `mlflow server` forks children of its own (uvicorn, a job runner, its consumers)
that know nothing of us: SIGKILL of our process would leave them holding the port, and a Ctrl-C
that reaches them all would have each print its own traceback. The guard leads a session of its
own (no terminal signal reaches it or CMD) and ends that whole session when its parent dies (the
kernel's SIGTERM, die_with_parent), when it gets SIGTERM, SIGINT or SIGHUP, or when CMD exits: SIGTERM
to every other process of the session, then SIGKILL to what is left after STOP_GRACE_S.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from trainer.process import STOP_GRACE_S, die_with_parent, kill_session, session_members

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def guarded(cmd: list[str]) -> list[str]:
    """The command that runs `cmd` under a guard whose parent is this process."""
    return [sys.executable, "-m", "orchestrator.session_guard", str(os.getpid()), *cmd]


class _Stop(Exception):
    def __init__(self, signum: int):
        self.signum = signum


def _raise_stop(signum: int, _frame) -> None:
    raise _Stop(signum)


def _signal_others(sig: int, server: subprocess.Popen | None) -> bool:
    """Send `sig` to every other live process of the guard's session; whether there was one."""
    me = os.getpid()
    if session_members(me) is None:  # no /proc: only the server itself can be reached
        alive = server is not None and server.poll() is None
        if alive:
            server.send_signal(sig)
        return alive
    return bool(kill_session(me, sig, spare=me))


def end_session(server: subprocess.Popen | None, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to the rest of the session, then SIGKILL to whatever is left after `grace_s`.

    All of them at once, not just the server: a server stops its children one after another
    (mlflow's job runner takes seconds), and each exits quietly on SIGTERM."""
    if not _signal_others(signal.SIGTERM, server):
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if server is not None:
            server.poll()  # reaped, the server no longer counts as a member
        if not [pid for pid in session_members(os.getpid()) or [] if pid != os.getpid()]:
            return
        time.sleep(0.05)
    _signal_others(signal.SIGKILL, server)


def main(argv: list[str]) -> int:
    parent, cmd = int(argv[0]), argv[1:]
    server: subprocess.Popen | None = None
    try:
        for sig in STOP_SIGNALS:
            signal.signal(sig, _raise_stop)
        if os.getppid() != parent:  # the parent died before our death signal was armed
            return 128 + signal.SIGTERM
        # If the guard itself is killed, the server still gets SIGTERM and stops its children
        server = subprocess.Popen(cmd, preexec_fn=die_with_parent())
        return server.wait()
    except _Stop as stop:
        return 128 + stop.signum
    finally:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)  # a second stop must not cut the ending short
        end_session(server)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
