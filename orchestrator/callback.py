"""The Tune callback in the driver process: turns Tune's trial events into TrialRecords, MLflow
runs (through SweepTracker) and console lines. Workers never talk to MLflow."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.tune import Callback

from orchestrator.errors import first_line
from orchestrator.outcome import (
    COMPLETED,
    FAILED,
    INTERRUPTED,
    MARGIN,
    MEAN_CURVE,
    RETRY_OF,
    SEED,
    TRIAL_NUMBER,
    VAL_LOSS,
    carries_val,
    final_status,
    finite,
)
from orchestrator.progress import SweepConsole
from orchestrator.records import Rung, TrialRecord, objective_of, searched_params
from orchestrator.tracking import SweepTracker

logger = logging.getLogger(__name__)


class SweepCallback(Callback):
    """`overrides_of(config)` gives a trial's trainer overrides; `resolve(overrides)` its full
    config as (dict, YAML) or None when the trainer rejects it."""

    def __init__(
        self,
        overrides_of: Callable[[dict[str, Any]], list[str]],
        resolve: Callable[[list[str]], tuple[dict[str, Any], str] | None],
        tracker: SweepTracker,
        view: SweepConsole,
    ):
        self.overrides_of = overrides_of
        self.resolve = resolve
        self.tracker = tracker
        self.view = view
        self.records: dict[str, TrialRecord] = {}
        self._warned = False

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its run config (callbacks included) into tuner.pkl for `Tuner.restore`,
        which this driver does not use: leave out the MLflow client and the console."""
        return {**self.__dict__, "tracker": None, "view": None}

    # --- Tune's hooks ----------------------------------------------------------------

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        rec = self._record(trial)
        resolved = self.resolve(rec.overrides)
        self._safely(self.tracker.start_trial, rec, *(resolved or (None, None)))

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict[str, Any], **info) -> None:
        rec = self._record(trial)
        rec.last = result
        if SEED in result:  # one seed's run of the config: its own nested run
            self._safely(self.tracker.log_seed_result, rec, result)
        elif carries_val(result) and result["step"] not in {s for s, _ in rec.curve}:
            rec.curve.append((result["step"], float(result[VAL_LOSS])))
            self._safely(self.tracker.log_result, rec, result)

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self._finish(trial, error=None)

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._finish(trial, error=_error_text(trial))

    def close_unfinished(self) -> list[TrialRecord]:
        """After an interrupted fit (Ctrl-C, SIGTERM): Tune reports nothing more for the trials that
        were running; close their MLflow runs as interrupted (the driver then queues them again in
        Optuna: resume.requeue_interrupted)."""
        left = [r for r in self.records.values() if r.finished is None]
        for rec in left:
            rec.finished = time.time()
            rec.status = INTERRUPTED
            rec.error = "the sweep was interrupted while this trial ran"
            self._safely(self.tracker.finish_trial, rec)
        return left

    # --- helpers -----------------------------------------------------------------------

    def _record(self, trial) -> TrialRecord:
        rec = self.records.get(trial.trial_id)
        if rec is None:
            config = dict(trial.config)
            number = config.get(TRIAL_NUMBER)
            try:
                overrides = self.overrides_of(config)
            except ValueError:
                overrides = []
            rec = TrialRecord(trial.trial_id, number, searched_params(config), overrides, retry_of=config.get(RETRY_OF),
                              rung=Rung.of(config))
            self.records[trial.trial_id] = rec
        return rec

    def _finish(self, trial, error: str | None) -> None:
        rec = self._record(trial)
        if rec.finished is not None:
            return
        if rec.tune_id not in self.tracker.runs:  # completed without ever starting (cancelled)
            self.on_trial_start(0, [], trial)
        result = trial.last_result or {}
        rec.last = result or rec.last
        rec.finished = time.time()
        rec.status = final_status(result, error is not None)
        rec.objective = objective_of(result) if rec.status == COMPLETED else float("inf")
        rec.margin = result.get(MARGIN, rec.margin)
        if result.get(MEAN_CURVE):  # a config of several seeds: its curve is their mean
            rec.curve = [(int(step), float(loss)) for step, loss in result[MEAN_CURVE]]
        final = result.get("final_val_loss")
        rec.final_val_loss = float(final) if finite(final) else float("inf")
        rec.error = error or result.get("error") or ""
        if rec.status == FAILED and not rec.error:
            rec.error = "the trial ended before the trainer reported anything"
        rec.log_tail = result.get("log_tail") or ""
        rec.retries = trial.num_failures - (error is not None)  # the last failure, if any, was not retried
        self._safely(self.tracker.finish_trial, rec)
        running = sum(1 for r in self.records.values() if r.finished is None)
        self.view.trial_finished(rec, running)

    def _safely(self, fn, *args) -> None:
        """Tracking must not end the sweep: a failed MLflow write is reported, not raised."""
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001
            logger.debug("MLflow write failed", exc_info=True)
            if not self._warned:
                self.view.print(f"[yellow]warning:[/] MLflow write failed ({first_line(exc)}); the sweep goes on")
                self._warned = True


def _error_text(trial) -> str:
    """The error Tune recorded for a trainable that raised (first and last lines)."""
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return "the trainable raised (see the Tune trial directory)"
    return lines[-1] if len(lines) == 1 else f"{lines[-1]} (Tune: {lines[0]})"
