"""MLflow, written by the sweep driver only: one experiment per sweep, a parent run for the
sweep and a nested run per trial (the `mlflow.parentRunId` tag, which is what
`mlflow.start_run(nested=True)` sets; the explicit client is used because trials overlap in
time, so there is no single "active run").

Per trial: the full resolved trainer config flattened to dotted params, plus `searched.<name>`
for what the searcher chose; val_loss / train_time_ms / tokens / progress by trainer step, and
at the end the objective, wall_time_s and the trial's timeline (time_*_s, orchestrator/trial.py);
tags (status, optuna_trial, retry_of, retries — how often Tune re-ran it after losing its worker —,
tune_trial_id, node, node_ip, node_id and gpu_ids — where Ray ran it —, device, error, and env.* —
the environment fingerprint: host, torch, GPU, driver, CUDA, triton); artifacts (config.yaml,
trainer_log_tail.txt). A config run with several seeds (budget.seeds) has one run per seed nested
under its trial's run (`trial_NNNN.seed_S`: tags speedrun.role = seed, seed, trial, status; its
val_loss by step, final_val_loss), and the trial's own val_loss is their mean by step. A horizon sweep's run also has params `rung` and
`fidelity` and tags `config_trial` (the rung-0 trial of its config) and `promoted_from`; a retune
run also the tag `retune` (the parameter it moved), an audit run the tag `audit`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from orchestrator.outcome import (
    COMPLETED,
    INTERRUPTED,
    MARGIN,
    MEAN_CURVE,
    OBJECTIVE,
    PROGRESS,
    RUNG,
    RUNNING,
    SEED,
    SEED_RUNS,
    STATUS,
    VAL_LOSS,
    finite,
)
from orchestrator.records import TrialRecord
from search_spaces import FIDELITY

PARENT_TAG = "mlflow.parentRunId"
TAG_MAX = 5000  # characters of an error kept in a tag (MLflow's tag limit is larger; keep the UI readable)
RUN_STATUS = {COMPLETED: "FINISHED", "stopped": "KILLED", "pruned": "KILLED", INTERRUPTED: "KILLED"}  # others: FAILED

for _name in ("mlflow", "alembic"):
    logging.getLogger(_name).setLevel(logging.WARNING)
# MLflow logs each failed database write with its traceback (a lost or full store floods the console);
# the driver says it once instead (callback._safely, sweep._store_step)
logging.getLogger("mlflow.store.db").setLevel(logging.CRITICAL)


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """A nested config as {dotted.key: value}: mappings and lists of mappings (stage lists) are
    walked (`schedule.batch.0.tokens`), other lists are one JSON value."""
    out: dict[str, str] = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(tree, list) and tree and all(isinstance(v, dict) for v in tree):
        for i, v in enumerate(tree):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = json.dumps(tree) if isinstance(tree, (list, dict, bool)) or tree is None else str(tree)
    return out


def param_key(key: str) -> str:
    """`key` in the characters MLflow allows in a param name: a script knob's address
    (`TRAINING_STAGES[1].lr_mul`, `Muon.momentum#2`, `triton_kernels.py:A`) keeps its shape, `[1]`
    becoming `.1`."""
    key = re.sub(r"\[(\d+)\]", r".\1", key)
    return re.sub(r"[^\w.\- /:]", "_", key)


def git_commit(path: Path) -> tuple[str | None, bool]:
    """(commit, dirty) of the git checkout holding `path`, or (None, False)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5)
        if head.returncode:
            return None, False
        status = subprocess.run(["git", "status", "--porcelain"], cwd=path, capture_output=True, text=True, timeout=10)
        return head.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, False


def run_status(status: str) -> str:
    """The MLflow run status of a trial status."""
    return RUN_STATUS.get(status, "FAILED")


def experiment_exists(tracking_uri: str, name: str) -> bool:
    return MlflowClient(tracking_uri).get_experiment_by_name(name) is not None


class SweepTracker:
    """The sweep's MLflow experiment, its parent run and one child run per trial."""

    def __init__(self, client: MlflowClient, experiment_id: str, parent_id: str):
        self.client = client
        self.experiment_id = experiment_id
        self.parent_id = parent_id
        self.runs: dict[str, str] = {}  # tune trial id -> child run id
        self.seed_runs: dict[str, str] = {}  # "tune trial id/seed" -> a seed's run, nested under its trial's

    @classmethod
    def create(cls, tracking_uri: str, name: str, params: dict[str, Any], space_file: Path | None,
               description: str = "", kind: str = "sweep") -> SweepTracker:
        """A new experiment named after the sweep, with its parent run (`kind`: sweep or ablation)."""
        client = MlflowClient(tracking_uri)
        experiment_id = client.create_experiment(name, tags={"speedrun.sweep": name, "speedrun.kind": kind})
        tracker = cls(client, experiment_id, cls._new_parent(client, experiment_id, name, description, kind))
        tracker._log(tracker.parent_id, params=flatten(params))
        if space_file is not None and space_file.is_file():
            client.log_artifact(tracker.parent_id, str(space_file))
        return tracker

    @classmethod
    def reopen(cls, tracking_uri: str, name: str) -> SweepTracker:
        """The existing experiment of a sweep being resumed; its parent run is set RUNNING again."""
        client = MlflowClient(tracking_uri)
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise LookupError(f"no MLflow experiment named '{name}' in {tracking_uri}")
        parents = client.search_runs(
            [exp.experiment_id], filter_string="tags.`speedrun.role` = 'sweep'", order_by=["attributes.start_time ASC"]
        )
        if parents:
            parent_id = parents[0].info.run_id
            client.update_run(parent_id, status="RUNNING")
        else:  # the first driver died between creating the experiment and its run
            parent_id = cls._new_parent(client, exp.experiment_id, name, "", exp.tags.get("speedrun.kind", "sweep"))
        resumes = int(parents[0].data.tags.get("resumes", "0")) + 1 if parents else 1
        client.set_tag(parent_id, "resumes", str(resumes))
        return cls(client, exp.experiment_id, parent_id)

    @staticmethod
    def _new_parent(client: MlflowClient, experiment_id: str, name: str, description: str, kind: str) -> str:
        commit, dirty = git_commit(Path(__file__).resolve().parent)
        tags = {"speedrun.role": "sweep", "speedrun.kind": kind, "host": socket.gethostname()}
        if commit:
            tags.update({"git_commit": commit, "mlflow.source.git.commit": commit, "git_dirty": str(dirty).lower()})
        if description:
            tags["mlflow.note.content"] = description
        return client.create_run(experiment_id, run_name=name, tags=tags).info.run_id

    def trial_runs(self) -> dict[int, list]:
        """The child runs already in the experiment, by Optuna trial number (tag optuna_trial)."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_id}'", max_results=50000
        )
        out: dict[int, list] = {}
        for run in runs:
            number = run.data.tags.get("optuna_trial")
            if number is not None and number.isdigit():
                out.setdefault(int(number), []).append(run)
        return out

    # --- trials --------------------------------------------------------------------------

    def start_trial(self, rec: TrialRecord, config: dict[str, Any] | None, config_yaml: str | None) -> None:
        if rec.tune_id in self.runs:  # a trial Tune retried: keep its one run
            return
        tags = {PARENT_TAG: self.parent_id, "status": RUNNING, "tune_trial_id": rec.tune_id}
        if rec.number is not None:
            tags["optuna_trial"] = str(rec.number)
        if rec.retry_of is not None:
            tags["retry_of"] = str(rec.retry_of)
        if rec.rung is not None:  # links the run to its config's other rungs
            tags.update({k: str(v) for k, v in rec.rung.attrs().items() if k not in (RUNG, FIDELITY)})
        name = f"trial_{rec.number:04d}" if rec.number is not None else rec.tune_id
        run_id = self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id
        self.runs[rec.tune_id] = run_id
        params = flatten(config) if config is not None else {f"set.{o.partition('=')[0]}": o.partition("=")[2] for o in rec.overrides}
        params.update(flatten(rec.params, "searched."))  # what the searcher chose (an ablation: arm, seed)
        if rec.rung is not None:
            params.update({RUNG: str(rec.rung.index), FIDELITY: str(rec.rung.fidelity)})
        self._log(run_id, params=params)
        if config_yaml is not None:
            self.client.log_text(run_id, config_yaml, "config.yaml")

    def log_result(self, rec: TrialRecord, result: dict[str, Any]) -> None:
        """One val event's numbers (from a result that carries one) as metrics at its trainer step."""
        run_id = self.runs.get(rec.tune_id)
        step = result.get("step")
        if run_id is None or not isinstance(step, int):
            return
        values = {k: result.get(k) for k in (VAL_LOSS, "train_time_ms", "tokens", PROGRESS)}
        self._log(run_id, metrics={k: v for k, v in values.items() if finite(v)}, step=step)

    def log_seed_result(self, rec: TrialRecord, result: dict[str, Any]) -> None:
        """One val event of one seed's run of a config, on that run's own MLflow run, nested under
        the trial's run (made at its first event)."""
        parent = self.runs.get(rec.tune_id)
        step = result.get("step")
        if parent is None or not isinstance(step, int):
            return
        run_id = self._seed_run(rec, parent, result[SEED])
        values = {k: result.get(k) for k in (VAL_LOSS, "train_time_ms", "tokens")}
        self._log(run_id, metrics={k: v for k, v in values.items() if finite(v)}, step=step)

    def _seed_run(self, rec: TrialRecord, parent: str, seed: int) -> str:
        key = f"{rec.tune_id}/{seed}"
        if key not in self.seed_runs:
            name = f"trial_{rec.number:04d}" if rec.number is not None else rec.tune_id
            tags = {PARENT_TAG: parent, "speedrun.role": "seed", SEED: str(seed), "status": RUNNING}
            if rec.number is not None:
                tags["trial"] = str(rec.number)
            run = self.client.create_run(self.experiment_id, run_name=f"{name}.seed_{seed}", tags=tags)
            self.seed_runs[key] = run.info.run_id
        return self.seed_runs[key]

    def _finish_seed_runs(self, rec: TrialRecord, parent: str) -> None:
        for run in rec.last.get(SEED_RUNS) or []:
            run_id = self._seed_run(rec, parent, run[SEED])
            metrics = {k: run.get(k) for k in ("final_val_loss", "train_time_ms")}
            tags = {"status": run[STATUS], **({"error": run["error"][:TAG_MAX]} if run.get("error") else {})}
            self._log(run_id, metrics={k: v for k, v in metrics.items() if finite(v)}, tags=tags, step=run.get("step") or 0)
            self.client.set_terminated(run_id, run_status(run[STATUS]))

    def finish_trial(self, rec: TrialRecord) -> None:
        run_id = self.runs.get(rec.tune_id)
        if run_id is None:
            return
        last = rec.last
        if last.get(SEED_RUNS):  # the config's runs, and its mean curve as its own val_loss
            self._finish_seed_runs(rec, run_id)
            for step, loss in last.get(MEAN_CURVE) or []:
                self._log(run_id, metrics={VAL_LOSS: loss}, step=step)
        tags = {"status": rec.status}
        for key, tag in (("hostname", "node"), ("node_ip", "node_ip"), ("node_id", "node_id"), ("device", "device"),
                         ("world_size", "world_size")):
            if last.get(key) is not None:
                tags[tag] = str(last[key])
        if last.get("gpu_ids"):  # as in CUDA_VISIBLE_DEVICES
            tags["gpu_ids"] = ",".join(str(i) for i in last["gpu_ids"])
        tags.update({f"env.{k}": str(v) for k, v in (last.get("env") or {}).items() if v is not None})
        if rec.retries:
            tags["retries"] = str(rec.retries)
        if rec.error:
            tags["error"] = rec.error[:TAG_MAX]
        metrics = {"wall_time_s": rec.duration_s, **{k: v for k, v in last.items() if k.startswith("time_")}}
        if rec.status == COMPLETED:
            metrics.update({OBJECTIVE: rec.objective, "final_val_loss": rec.final_val_loss, MARGIN: rec.margin})
        self._log(run_id, metrics={k: v for k, v in metrics.items() if finite(v)}, tags=tags, step=last.get("step") or 0)
        if rec.log_tail:
            self.client.log_text(run_id, rec.log_tail, "trainer_log_tail.txt")
        if last.get("trial_dir"):
            self._log_patched_files(run_id, Path(last["trial_dir"]) / "code")
        self.client.set_terminated(run_id, run_status(rec.status))

    def _log_patched_files(self, run_id: str, code: Path) -> None:
        """A script trial's patched files: the real files of its code folder (the rest are links
        to the user's folder, never followed)."""
        for folder, _, files in os.walk(code):
            rel = Path(folder).relative_to(code)
            for name in sorted(files):
                if not (Path(folder) / name).is_symlink():
                    self.client.log_artifact(run_id, str(Path(folder) / name), None if rel == Path() else str(rel))

    # --- the sweep -----------------------------------------------------------------------

    def finish(self, metric: str, best: TrialRecord | None, records: list[TrialRecord], leaderboard: str,
               best_config: Path | None, complete: bool) -> None:
        counts: dict[str, int] = {}
        for r in records:
            counts[r.status] = counts.get(r.status, 0) + 1
        tags = {f"trials_{k}": str(v) for k, v in counts.items()}
        metrics: dict[str, float] = {"trials": float(len(records))}
        if best is not None:
            metrics.update({f"best_{metric}": best.objective, "best_final_val_loss": best.final_val_loss})
            tags.update({"best_trial": str(best.number), "best_run_id": self.runs.get(best.tune_id, "")})
        self._log(self.parent_id, metrics={k: v for k, v in metrics.items() if finite(v)}, tags=tags)
        self.client.log_text(self.parent_id, leaderboard, "leaderboard.txt")
        if best_config is not None and best_config.is_file():
            self.client.log_artifact(self.parent_id, str(best_config))
        self.client.set_terminated(self.parent_id, "FINISHED" if complete else "KILLED")

    def fail(self, interrupted: bool = False) -> None:
        """The driver itself stopped (it failed, or was interrupted outside Tune's own handling):
        its open trial runs were cut off, as `--resume` will find them; the parent is FAILED, or
        KILLED when interrupted."""
        for run_id in [*self.runs.values(), *self.seed_runs.values()]:
            with contextlib.suppress(Exception):  # best effort while failing already
                if self.client.get_run(run_id).info.status == "RUNNING":
                    self._log(run_id, tags={"status": INTERRUPTED})
                    self.client.set_terminated(run_id, run_status(INTERRUPTED))
        with contextlib.suppress(Exception):
            self.client.set_terminated(self.parent_id, "KILLED" if interrupted else "FAILED")

    def _log(self, run_id: str, params: dict[str, str] | None = None, metrics: dict[str, float] | None = None,
             tags: dict[str, str] | None = None, step: int = 0) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, step) for k, v in (metrics or {}).items()],
            params=[Param(param_key(k), v) for k, v in (params or {}).items()],
            tags=[RunTag(k, v) for k, v in (tags or {}).items()],
        )
