"""`speedrun ui`: the MLflow UI on a sweep's local tracking store.

    cmd = ui_command("sqlite:///mlflow.db", host="127.0.0.1", port=5000)
    code = run_ui("sqlite:///mlflow.db")               # blocks until Ctrl-C

It runs `python -m mlflow server --backend-store-uri URI --host HOST --port PORT --workers 1`
(the mlflow of this environment), bound to 127.0.0.1 unless asked otherwise.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from trainer.errors import InputError


def sqlite_path(uri: str) -> Path | None:
    """The file of a `sqlite:///PATH` URI (relative to the cwd unless absolute), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):])


def ui_command(tracking_uri: str, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
            "--host", host, "--port", str(port), "--workers", "1"]


def ui_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}/"


def run_ui(tracking_uri: str, host: str = "127.0.0.1", port: int = 5000, echo=print) -> int:
    """Start the server and wait for it; Ctrl-C (or SIGTERM) stops it. Returns its exit code."""
    db = sqlite_path(tracking_uri)
    if db is not None and not db.is_file():
        raise InputError(
            f"--tracking-uri {tracking_uri}: no such file {db} (run a sweep here first, or point --tracking-uri at its store)"
        )
    if not 0 < port < 65536:
        raise InputError(f"--port {port}: expected 1 to 65535")
    proc = subprocess.Popen(ui_command(tracking_uri, host, port))
    echo(f"MLflow UI for {tracking_uri} at {ui_url(host, port)}  (Ctrl-C to stop)")
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()  # the server got the terminal's SIGINT too; make sure it goes
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
