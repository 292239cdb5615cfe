"""`speedrun ui` as a user runs it: a real `mlflow server` (uvicorn, its job runner and consumers)
on a real sqlite store, stopped the ways a user stops it. Nothing of it may outlive the command,
and stopping it prints a line, not every child's traceback.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from processes import (  # tests/processes.py
    UI_GONE_TIMEOUT_S,
    Ui,
    descendants,
    start_ui,
    wait_gone,
)


@pytest.fixture
def speedrun_ui(tmp_path: Path) -> Iterator[Callable[[], Ui]]:
    """Starts `speedrun ui` on a sweep's store (mlflow.db in its directory); whatever a failing
    test leaves of it is killed afterwards."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_run(client.create_experiment("demo"))
    started: list[Ui] = []

    def start() -> Ui:
        started.append(start_ui(tmp_path))
        return started[-1]

    yield start
    for ui in started:
        ui.kill_leftovers()


def test_sigkill_of_speedrun_ui_takes_the_whole_mlflow_server_with_it(speedrun_ui) -> None:
    ui = speedrun_ui()
    assert len(descendants(ui.proc.pid)) >= 3, "expected mlflow server, uvicorn and its job runner"
    ui.proc.kill()
    ui.proc.wait()
    left = wait_gone(ui)
    assert not left, f"still running {UI_GONE_TIMEOUT_S} s after SIGKILL of speedrun ui: {left}"


@pytest.mark.parametrize("how", ["ctrl_c", "sigterm"])
def test_ctrl_c_or_sigterm_stops_the_ui_with_exit_130_and_one_line(speedrun_ui, how: str) -> None:
    ui = speedrun_ui()
    time.sleep(0.5)  # the server's own start-up lines are out
    before = len(ui.stderr.read_text().splitlines())
    if how == "ctrl_c":
        os.killpg(ui.proc.pid, signal.SIGINT)  # what a terminal sends: its whole foreground group
    else:
        ui.proc.send_signal(signal.SIGTERM)
    code = ui.proc.wait(timeout=UI_GONE_TIMEOUT_S)
    after = ui.stderr.read_text().splitlines()[before:]
    assert code == 130, "\n".join(after)
    assert "Traceback" not in "\n".join(after) and len(after) < 5, "\n".join(after)
    assert ui.stdout.read_text().splitlines()[-1] == "MLflow UI stopped"
    assert wait_gone(ui) == []
