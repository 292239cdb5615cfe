"""The Tune trainable: one trial is one trainer run, its val events become Tune results.

A class trainable (not the function API): Tune hands a reused actor its next trial through
`reset_config()` and tears one down through `cleanup()`, and both are where a trainer still
running (a trial ASHA stopped) gets SIGTERM and is waited for. A function trainable is left
blocked in `tune.report` and its actor exits, which would orphan or SIGKILL the trainer.

A trial's trainer is a job of the actor's warm worker (trainer/worker.py) when it runs in one
process on a trainer config: the worker keeps imports, CUDA and the compiled model from one
trial to the next, and the result says how many runs it had done before (`worker_runs`, 0 for
a fresh process). Torchrun and script trials start a process each.

Each `step()` returns one result: the next `val` event as {objective, val_loss, step,
train_time_ms, tokens, progress, status: running}, and finally, once the trainer has exited,
the outcome {status, objective, final_val_loss, error, log_tail, done: True}; the val event
of the last step travels in that final result (its val_loss, step, progress 1.0). A trainer that
fails or diverges is a final result with that status, never an exception, so it cannot stop
the sweep. This module runs in Ray workers: it talks to neither MLflow nor Optuna.

The final result also lays out the trial's timeline in seconds, from this worker's wall-clock
stamps and the `time` of the trainer's events (one host, one clock), in the order they happen:

  time_spawn_s    setup() start -> trainer process started (or the job handed to the warm
                  worker): trial directory, proposal checks, fork and exec
  time_startup_s  process started -> the trainer's `start` event; the sum of the next three:
    time_import_s   process started -> train() called: interpreter, imports (torch), config;
                    under torchrun also its launcher; in a warm worker only the config
    time_data_s     reading and checking the train shard and the validation tokens
    time_build_s    device and process group, model, optimizers
  time_compile_s  the untimed warm-up (the `warmup` event's `seconds`): torch.compile on CUDA
  time_train_s    the trainer's timed training (train_time_ms / 1000)
  time_val_s      the rest of the training loop (`warmup` -> `end` minus time_train_s): validation
                  (on CUDA the first one compiles the validation graph) and checkpoints
  time_exit_s     `end` event -> process exit (or the warm worker's reply) seen
  time_process_s  process started -> exit seen: time_startup_s + ... + time_exit_s
  time_trial_s    setup() (or reset_config()) start -> this final result
  started_at      that start as a unix time, to line trials up on one axis

The Ray actor's own start-up (worker process, imports of Ray Tune and this module) comes before
a fresh actor's setup() and is in no key: the driver sees it between its trials. A key is absent
when its phase did not happen (a rejected proposal has only time_trial_s; a trainer that failed
before `start` has no start-up keys). Intermediate results carry none of them.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections import deque
from pathlib import Path
from typing import Any

import ray
from ray import tune

from orchestrator.event_tail import EventTail
from orchestrator.launch import (
    STOP_GRACE_S,
    TrainerProcess,
    WarmRun,
    WarmWorker,
    compile_cache_env,
    trainer_args,
    trial_command,
)
from orchestrator.outcome import (
    COMPLETED,
    DIVERGED,
    FAILED,
    MARGIN,
    MEAN_CURVE,
    OBJECTIVE,
    PROGRESS,
    REJECTED,
    RUNNING,
    SEED,
    SEED_ENV,
    SEED_RUNS,
    STATUS,
    STOPPED,
    TRIAL_NUMBER,
    VAL_LOSS,
    Objective,
    Score,
    finite,
    score,
    status_from_exit,
)
from search_spaces.ablation import SEED as ABLATION_SEED
from search_spaces.ablation import SEED_KEY

POLL_S = 0.2


def trial_dir_name(config: dict[str, Any], trial_id: str) -> str:
    number = config.get(TRIAL_NUMBER)
    return f"trial_{number:04d}" if isinstance(number, int) else f"trial_{trial_id}"


class Timeline:
    """One trial's wall-clock stamps (unix seconds) and the trainer's phase events, as time_* keys."""

    PHASE_EVENTS = ("start", "warmup", "end")

    def __init__(self) -> None:
        self.at: dict[str, float] = {"setup": time.time()}
        self.events: dict[str, dict[str, Any]] = {}

    def mark(self, name: str) -> None:
        """Stamp `name` now; the first stamp of a name stays."""
        self.at.setdefault(name, time.time())

    def add(self, ev: dict[str, Any]) -> None:
        """Keep a phase event and its stamp (the trainer's `time`); other events are ignored."""
        if ev["event"] in self.PHASE_EVENTS and finite(ev.get("time")):
            self.events[ev["event"]] = ev
            self.at[ev["event"]] = ev["time"]

    def span(self, a: str, b: str) -> float | None:
        """Seconds from stamp `a` to stamp `b`; None unless both happened."""
        return self.at[b] - self.at[a] if a in self.at and b in self.at else None

    def keys(self, train_time_ms: float) -> dict[str, float]:
        """The keys of the phases that happened (see the module docstring); time_trial_s runs to now."""
        start, warmup = self.events.get("start", {}), self.events.get("warmup", {})
        startup, loop = self.span("spawn", "start"), self.span("warmup", "end")
        init, data = start.get("seconds"), start.get("data_seconds")
        parts = startup is not None and finite(init) and finite(data)
        train = train_time_ms / 1000 if loop is not None else None
        out = {
            "time_spawn_s": self.span("setup", "spawn"),
            "time_startup_s": startup,
            "time_import_s": startup - init if parts else None,
            "time_data_s": data if parts else None,
            "time_build_s": init - data if parts else None,
            "time_compile_s": warmup.get("seconds"),
            "time_train_s": train,
            "time_val_s": loop - train if loop is not None else None,
            "time_exit_s": self.span("end", "exit"),
            "time_process_s": self.span("spawn", "exit"),
            "time_trial_s": time.time() - self.at["setup"],
            "started_at": self.at["setup"],
        }
        return {k: v for k, v in out.items() if finite(v)}


class TrainerTrial(tune.Trainable):
    """Runs `python -m trainer --config BASE --set ... --events DIR/events.jsonl` for one proposal.

    Bound to the sweep with `tune.with_parameters(TrainerTrial, space=..., workdir=..., trials_dir=...,
    warm=..., compile_cache=...)`: `space` is the loaded SweepSpace, `workdir` the directory the
    trainer runs in (relative data paths are the trainer's, relative to it), `trials_dir` where each
    trial's directory goes. With `warm` (the default), a one-process trial of a trainer config is
    a job of this actor's warm worker (trainer/worker.py), which Tune hands the slot's next trial
    (`reuse_actors`, `reset_config`); torchrun and script trials get a process each. `compile_cache`:
    the root of the per-node inductor and Triton caches every trainer of this node shares.
    """

    def setup(self, config: dict[str, Any], space=None, workdir: str = ".", trials_dir: str = "trials",
              warm: bool = True, compile_cache: str | None = None):
        self.space, self.workdir, self.trials_dir = space, workdir, Path(trials_dir)
        self.env = {**(compile_cache_env(compile_cache) if compile_cache else {}), **space.base.env}
        self.nproc = space.resources.gpus if space.resources.gpus > 1 else 1
        self.warm = warm and self.nproc == 1 and not space.base.is_script
        self.worker: WarmWorker | None = None
        self._begin(config)

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        """Tune hands this actor the next trial: stop what is left of the last one, start this one."""
        self._end_trainer()
        self._begin(new_config)
        return True

    def _begin(self, config: dict[str, Any]) -> None:
        self.timeline = Timeline()
        space = self.space
        self.dir = self.trials_dir / trial_dir_name(config, self.trial_id)
        if self.dir.exists():  # a retried trial (Tune's failure handling) starts afresh
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        self.pending: deque[dict[str, Any]] = deque()
        self.final: dict[str, Any] | None = None
        self.process: TrainerProcess | WarmRun | None = None
        self.seeds = space.budget.seeds
        self.runs: list[dict[str, Any]] = []  # the config's finished runs, one per seed
        # Where Ray placed the trial: its node, and the GPUs it set CUDA_VISIBLE_DEVICES to in this
        # actor, which the trainer inherits
        ctx = ray.get_runtime_context()
        self.info: dict[str, Any] = {"trial_dir": str(self.dir), "node_id": ctx.get_node_id(),
                                     "gpu_ids": ray.get_gpu_ids()}
        self.overrides = space.overrides(config)
        # an ablation's run carries its seed: the trainer's is in its overrides, a script reads it here
        self.ablation_seed = config.get(ABLATION_SEED) if space.kind == "ablation" else None
        (self.dir / "overrides.txt").write_text("".join(f"{o}\n" for o in self.overrides))
        self._new_run()
        problems = space.violations(self.overrides)
        if problems:
            self.final = self._final_result(REJECTED, error="; ".join(problems))
            return
        self._start_run()

    def _new_run(self) -> None:
        """State of the config's next run: its events, its val events so far, its time limit."""
        seed = len(self.runs)
        run_dir = self.dir / f"seed_{seed}" if self.seeds > 1 else self.dir  # one run: the trial's folder, as always
        run_dir.mkdir(exist_ok=True)
        self.events_path = run_dir / "events.jsonl"
        objective = self.space.objective
        self.objective = Objective(objective.metric, objective.target, objective.margin)
        self.num_iterations: int | None = None
        self.last: dict[str, Any] = {"step": 0, "train_time_ms": 0.0, "tokens": 0}
        self.end_event: dict[str, Any] | None = None
        self.time_limit_hit = False

    def _start_run(self) -> None:
        """Start the config's next run: with budget.seeds > 1, run i is seed i (`runtime.seed` of
        the trainer; a script reads $SPEEDRUN_SEED, or is simply run again)."""
        space, seed = self.space, len(self.runs)
        overrides, env = self.overrides, self.env
        if self.seeds > 1:
            overrides = overrides if space.base.is_script else [*overrides, f"{SEED_KEY}={seed}"]
            env = {**env, SEED_ENV: str(seed)}
        elif self.ablation_seed is not None:
            env = {**env, SEED_ENV: str(self.ablation_seed)}
        self.tail = EventTail(self.events_path)
        self.started = time.monotonic()
        self.timeline.mark("spawn")
        log = self.events_path.parent / "trainer.log"
        if self.warm:
            if self.worker is None or not self.worker.alive():
                self.worker = WarmWorker(self.workdir, log=self.trials_dir / f"worker_{os.getpid()}.log", env=self.env)
            self.process = self.worker.submit(trainer_args(space.base.config, overrides, self.events_path), log)
            self.info["worker_runs"] = self.process.earlier_runs
        else:
            cmd = trial_command(space.base.config, overrides, self.events_path, self.nproc, space.base.python)
            self.process = TrainerProcess(cmd, cwd=self.workdir, log=log, env=env)

    # --- Tune's interface ------------------------------------------------------------

    def step(self) -> dict[str, Any]:
        if self.final is not None:
            return self.final
        while True:
            self._read_events()
            if self.pending:
                return self.pending.popleft()
            code = self.process.poll()
            if code is not None:
                self.timeline.mark("exit")
                self._read_events()  # lines written just before it exited
                if self.pending:
                    return self.pending.popleft()
                outcome = self._outcome(code)
                if self.seeds == 1:
                    self.final = outcome
                    return self.final
                self.runs.append({**outcome, SEED: len(self.runs), "vals": self.objective.vals})
                if outcome[STATUS] == COMPLETED and len(self.runs) < self.seeds:
                    self._new_run()
                    self._start_run()
                    continue
                self.final = self._config_result()
                return self.final
            self._enforce_time_limit()
            self._wait(POLL_S)

    def _enforce_time_limit(self) -> None:
        """SIGTERM once the trial has run `budget.time_s`; SIGKILL (the trainer's session, or the
        warm worker) if it still runs STOP_GRACE_S later. One check, no waiting: step() calls it
        between reads of the events, which go on meanwhile."""
        time_s = self.space.budget.time_s
        if time_s is None:
            return
        if not self.time_limit_hit:
            if time.monotonic() - self.started > time_s:
                self.time_limit_hit = True
                self.process.terminate()
        elif (not self.process.killed and self.process.terminated_at is not None
              and time.monotonic() - self.process.terminated_at > STOP_GRACE_S):
            self.process.kill()  # it ignores SIGTERM, or hangs: the budget must still end it

    def _wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, but wake as soon as the trainer exits: the trial ends without a
        poll interval's delay, and time_exit_s is not rounded up to one."""
        if self.process.wait(seconds) is not None:
            self.timeline.mark("exit")

    def cleanup(self) -> None:
        """Tune is done with this actor: stop the trainer (SIGTERM, wait, SIGKILL), end the worker."""
        self._end_trainer()
        if self.worker is not None:
            self.worker.close()

    def _end_trainer(self) -> None:
        if self.process is not None and self.process.poll() is None:
            sent = self.process.terminated_at
            # one sent SIGTERM at the time limit already has only what is left of its grace
            grace = STOP_GRACE_S if sent is None else max(0.0, STOP_GRACE_S - (time.monotonic() - sent))
            self.process.stop(grace)

    # --- events -> results -------------------------------------------------------------

    def _read_events(self) -> None:
        for ev in self.tail.read():
            kind = ev["event"]
            self.timeline.add(ev)
            if kind == "start":
                cfg = ev.get("config") or {}
                self.num_iterations = (cfg.get("schedule") or {}).get("num_iterations")
                self.info.update(device=ev.get("device"), world_size=ev.get("world_size"), model_params=ev.get("params"),
                                 env=ev.get("env") or {})
            elif kind == "val":
                result = self._val_result(ev)
                # The val event at the last step is the end of the run: it goes out with the
                # final result, so a scheduler (ASHA stops trials at max_t = 1.0) never sees
                # a completed run as an intermediate one and stops it as if pruned. A run of
                # one seed of several reports all of its own (no scheduler decides on them).
                if self.seeds > 1 or not (self.num_iterations and ev["step"] >= self.num_iterations):
                    self.pending.append(result)
            elif kind == "end":
                self.end_event = ev
            if kind in ("train", "val", "end"):
                for key in ("step", "train_time_ms", "tokens"):
                    if ev.get(key) is not None:
                        self.last[key] = ev[key]

    def _progress(self, step: int) -> float:
        """The config's progress: its finished runs, and this one's step through its schedule."""
        run = step / self.num_iterations if self.num_iterations else 0.0
        return (len(self.runs) + run) / self.seeds

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
            **({SEED: len(self.runs)} if self.seeds > 1 else {}),
            **self.info,
        }

    def _config_result(self) -> dict[str, Any]:
        """The final result of a config run with several seeds: completed when every seed's run
        completed (the first that did not stops the rest and gives its status), the objective
        from all of them (outcome.score), val loss and curve their means."""
        runs = self.runs
        bad = next((r for r in runs if r[STATUS] != COMPLETED), None)
        status = bad[STATUS] if bad else COMPLETED
        objective = self.space.objective
        got = score(objective.metric, objective.target, objective.margin, [r["vals"] for r in runs]) \
            if bad is None else Score(math.inf)
        finals = [r["final_val_loss"] for r in runs]
        mean_final = sum(finals) / len(finals) if bad is None else math.inf
        losses = [{step: loss for step, loss, _ in r["vals"]} for r in runs]
        steps = sorted(set.intersection(*(set(by_step) for by_step in losses)))
        curve = [[step, sum(by_step[step] for by_step in losses) / len(runs)] for step in steps]
        last = runs[-1]
        return {
            OBJECTIVE: got.value,
            MARGIN: got.margin,
            VAL_LOSS: mean_final if finite(mean_final) else last[VAL_LOSS],
            "final_val_loss": mean_final,
            "step": last["step"],
            "train_time_ms": sum(r["train_time_ms"] or 0.0 for r in runs) / len(runs),
            "tokens": last["tokens"],
            PROGRESS: 1.0 if bad is None else len(runs) / self.seeds,
            STATUS: status,
            "error": f"seed {bad[SEED]}: {bad['error']}" if bad else "",
            SEED_RUNS: [{k: r.get(k) for k in (SEED, STATUS, "error", "final_val_loss", "step", "train_time_ms")}
                        for r in runs],
            MEAN_CURVE: curve if bad is None else [],
            **self.info,
            "exit_code": last.get("exit_code"),
            "log_tail": (bad or last).get("log_tail", ""),
            **self.timeline.keys(last["train_time_ms"]),
            "done": True,
        }

    def _outcome(self, code: int) -> dict[str, Any]:
        end = self.end_event or {}
        status = end.get("status") or status_from_exit(code)
        error = end.get("error")
        if self.time_limit_hit and (status == STOPPED or self.process.killed):
            status = STOPPED
            how = ", then killed: it ignored SIGTERM" if self.process.killed else ""
            error = f"stopped at the per-trial time limit (budget.time_s = {self.space.budget.time_s:g} s){how}"
        elif status == DIVERGED:
            error = f"diverged: non-finite loss at step {self.last['step']}"
        elif status == FAILED and not error:
            error = f"the trainer exited with code {code}" if code >= 0 else f"the trainer was killed by signal {-code}"
        elif status == COMPLETED and code != 0:
            status, error = FAILED, f"the trainer exited with code {code} after completing"
        return self._final_result(status, error=error, exit_code=code, log_tail=self.process.log_tail())

    def _final_result(self, status: str, error: str | None = None, **extra: Any) -> dict[str, Any]:
        last_loss = self.objective.last_val_loss
        got = self.objective.score() if status == COMPLETED else Score(math.inf)
        return {
            OBJECTIVE: got.value,
            MARGIN: got.margin,
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
            **self.timeline.keys(self.last["train_time_ms"]),
            "done": True,
        }
