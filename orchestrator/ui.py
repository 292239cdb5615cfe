"""`speedrun ui`: the MLflow UI on a sweep's local tracking store.

    cmd, env = ui_command(host="127.0.0.1", port=5000), ui_env("sqlite:///mlflow.db")
    code = run_ui("sqlite:///mlflow.db")               # blocks until Ctrl-C

It runs `python -m mlflow server --host HOST --port PORT --workers 1` (the mlflow of this
environment) on the store named by MLFLOW_BACKEND_STORE_URI, bound to 127.0.0.1 unless asked
otherwise. The server runs under a session guard (orchestrator/session_guard.py): none of its
processes outlives `speedrun ui`, and Ctrl-C reaches only `speedrun ui`, which stops them quietly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from orchestrator.errors import INTERRUPTED_EXIT_CODE
from orchestrator.session_guard import guarded
from orchestrator.stores import shown
from trainer.errors import InputError
from trainer.process import STOP_GRACE_S, die_with_parent


def sqlite_path(uri: str) -> Path | None:
    """The file of a `sqlite:///PATH` URI (relative to the cwd unless absolute), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):])


def ui_command(host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    return [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port), "--workers", "1"]


def ui_env(tracking_uri: str) -> dict[str, str]:
    """The store goes to the server in its environment, not its arguments: any local user can
    read a process's arguments (`ps`), and a PostgreSQL URI may hold a password."""
    return {"MLFLOW_BACKEND_STORE_URI": tracking_uri}


def ui_url(host: str, port: int) -> str:
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown_host}:{port}/"


def run_ui(tracking_uri: str, host: str = "127.0.0.1", port: int = 5000, echo=print) -> int:
    """Start the server and wait for it; Ctrl-C or SIGTERM stops it (130). Returns its exit code."""
    db = sqlite_path(tracking_uri)
    if db is not None and not db.is_file():
        raise InputError(
            f"--tracking-uri {tracking_uri}: no such file {db} (run a sweep here first, or point --tracking-uri at its store)"
        )
    if not 0 < port < 65536:
        raise InputError(f"--port {port}: expected 1 to 65535")
    env = {**os.environ, **ui_env(tracking_uri)}
    guard = subprocess.Popen(guarded(ui_command(host, port)), env=env, start_new_session=True,
                             preexec_fn=die_with_parent())
    echo(f"MLflow UI for {shown(tracking_uri)} at {ui_url(host, port)}  (Ctrl-C to stop)")
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # stops it as Ctrl-C does
    try:
        return guard.wait()
    except KeyboardInterrupt:
        _stop(guard)
        echo("MLflow UI stopped")
        return INTERRUPTED_EXIT_CODE
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop(guard: subprocess.Popen) -> None:
    """Have the guard end the server's session; a second Ctrl-C meanwhile is ignored, as the
    guard's own ending is bounded (SIGKILL after STOP_GRACE_S)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        guard.terminate()
        try:
            guard.wait(timeout=STOP_GRACE_S + 5)
        except subprocess.TimeoutExpired:
            guard.kill()  # the server then gets SIGTERM from its own death signal
            guard.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
