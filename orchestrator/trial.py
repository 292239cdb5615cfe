"""The Tune trainable: one trial is one trainer subprocess, its val events become Tune results.

A class trainable (not the function API) because Tune stops a trial (ASHA) by calling the
actor's `stop()`, which runs `cleanup()`: that is where the subprocess gets SIGTERM and is
waited for. A function trainable is left blocked in `tune.report` and its actor exits, which
would orphan or SIGKILL the trainer.

Each `step()` returns one result: the next `val` event as {objective, val_loss, step,
train_time_ms, tokens, progress, status: running}, and finally, once the trainer has exited,
the outcome {status, objective, final_val_loss, error, log_tail, done: True}; the val event
of the last step travels in that final result (its val_loss, step, progress 1.0). A trainer that
fails or diverges is a final result with that status, never an exception, so it cannot stop
the sweep. This module runs in Ray workers: it talks to neither MLflow nor Optuna.
"""

from __future__ import annotations

import math
import shutil
import time
from collections import deque
from pathlib import Path
from typing import Any

from ray import tune

from orchestrator.event_tail import EventTail
from orchestrator.launch import STOP_GRACE_S, TrainerProcess, trainer_command
from orchestrator.outcome import (
    COMPLETED,
    DIVERGED,
    FAILED,
    OBJECTIVE,
    PROGRESS,
    REJECTED,
    RUNNING,
    STATUS,
    STOPPED,
    TRIAL_NUMBER,
    VAL_LOSS,
    Objective,
    finite,
    status_from_exit,
)

POLL_S = 0.2


def trial_dir_name(config: dict[str, Any], trial_id: str) -> str:
    number = config.get(TRIAL_NUMBER)
    return f"trial_{number:04d}" if isinstance(number, int) else f"trial_{trial_id}"


class TrainerTrial(tune.Trainable):
    """Runs `python -m trainer --config BASE --set ... --events DIR/events.jsonl` for one proposal.

    Bound to the sweep with `tune.with_parameters(TrainerTrial, space=..., workdir=..., trials_dir=...)`:
    `space` is the loaded SweepSpace, `workdir` the directory the trainer runs in (relative data
    paths are the trainer's, relative to it), `trials_dir` where each trial's directory goes.
    """

    def setup(self, config: dict[str, Any], space=None, workdir: str = ".", trials_dir: str = "trials"):
        self.space = space
        self.dir = Path(trials_dir) / trial_dir_name(config, self.trial_id)
        if self.dir.exists():  # a retried trial (Tune's failure handling) starts afresh
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        self.events_path = self.dir / "events.jsonl"
        self.objective = Objective(space.objective.metric, space.objective.target)
        self.pending: deque[dict[str, Any]] = deque()
        self.final: dict[str, Any] | None = None
        self.process: TrainerProcess | None = None
        self.info: dict[str, Any] = {"trial_dir": str(self.dir)}
        self.num_iterations: int | None = None
        self.last: dict[str, Any] = {"step": 0, "train_time_ms": 0.0, "tokens": 0}
        self.end_event: dict[str, Any] | None = None
        self.time_limit_hit = False

        self.overrides = space.overrides(config)
        (self.dir / "overrides.txt").write_text("".join(f"{o}\n" for o in self.overrides))
        problems = space.violations(self.overrides)
        if problems:
            self.final = self._final_result(REJECTED, error="; ".join(problems))
            return
        nproc = space.resources.gpus if space.resources.gpus > 1 else 1
        cmd = trainer_command(space.base.config, self.overrides, self.events_path, nproc)
        self.tail = EventTail(self.events_path)
        self.started = time.monotonic()
        self.process = TrainerProcess(cmd, cwd=workdir, log=self.dir / "trainer.log")

    # --- Tune's interface ------------------------------------------------------------

    def step(self) -> dict[str, Any]:
        if self.final is not None:
            return self.final
        time_s = self.space.budget.time_s
        while True:
            self._read_events()
            if self.pending:
                return self.pending.popleft()
            code = self.process.poll()
            if code is not None:
                self._read_events()  # lines written just before it exited
                if self.pending:
                    return self.pending.popleft()
                self.final = self._outcome(code)
                return self.final
            if time_s is not None and not self.time_limit_hit and time.monotonic() - self.started > time_s:
                self.time_limit_hit = True
                self.process.terminate()
            time.sleep(POLL_S)

    def cleanup(self) -> None:
        """Tune stopped the trial (or it ended): SIGTERM the trainer, wait, then SIGKILL."""
        if self.process is not None and self.process.poll() is None:
            self.process.stop(STOP_GRACE_S)

    # --- events -> results -------------------------------------------------------------

    def _read_events(self) -> None:
        for ev in self.tail.read():
            kind = ev["event"]
            if kind == "start":
                cfg = ev.get("config") or {}
                self.num_iterations = (cfg.get("schedule") or {}).get("num_iterations")
                self.info.update(device=ev.get("device"), world_size=ev.get("world_size"), model_params=ev.get("params"))
            elif kind == "val":
                result = self._val_result(ev)
                # The val event at the last step is the end of the run: it goes out with the
                # final result, so a scheduler (ASHA stops trials at max_t = 1.0) never sees
                # a completed run as an intermediate one and stops it as if pruned.
                if not (self.num_iterations and ev["step"] >= self.num_iterations):
                    self.pending.append(result)
            elif kind == "end":
                self.end_event = ev
            if kind in ("train", "val", "end"):
                for key in ("step", "train_time_ms", "tokens"):
                    if ev.get(key) is not None:
                        self.last[key] = ev[key]

    def _progress(self, step: int) -> float:
        return step / self.num_iterations if self.num_iterations else 0.0

    def _val_result(self, ev: dict[str, Any]) -> dict[str, Any]:
        self.objective.add(ev)
        loss = ev.get("val_loss")
        return {
            OBJECTIVE: self.objective.so_far(),
            VAL_LOSS: float(loss) if finite(loss) else math.inf,
            "step": ev["step"],
            "train_time_ms": ev.get("train_time_ms"),
            "tokens": ev.get("tokens"),
            PROGRESS: self._progress(ev["step"]),
            STATUS: RUNNING,
            **self.info,
        }

    def _outcome(self, code: int) -> dict[str, Any]:
        end = self.end_event or {}
        status = end.get("status") or status_from_exit(code)
        error = end.get("error")
        if status == STOPPED and self.time_limit_hit:
            error = f"stopped at the per-trial time limit (budget.time_s = {self.space.budget.time_s:g} s)"
        elif status == DIVERGED:
            error = f"diverged: non-finite loss at step {self.last['step']}"
        elif status == FAILED and not error:
            error = f"the trainer exited with code {code}" if code >= 0 else f"the trainer was killed by signal {-code}"
        elif status == COMPLETED and code != 0:
            status, error = FAILED, f"the trainer exited with code {code} after completing"
        return self._final_result(status, error=error, exit_code=code, log_tail=self.process.log_tail())

    def _final_result(self, status: str, error: str | None = None, **extra: Any) -> dict[str, Any]:
        last_loss = self.objective.last_val_loss
        return {
            OBJECTIVE: self.objective.final(status),
            VAL_LOSS: last_loss if finite(last_loss) else math.inf,
            "final_val_loss": last_loss if status == COMPLETED and finite(last_loss) else math.inf,
            "step": self.last["step"],
            "train_time_ms": self.last["train_time_ms"],
            "tokens": self.last["tokens"],
            PROGRESS: self._progress(self.last["step"]),
            STATUS: status,
            "error": error or "",
            **self.info,
            **extra,
            "done": True,
        }
