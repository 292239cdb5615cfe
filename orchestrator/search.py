"""Ray Tune's OptunaSearch, with trial outcomes told to Optuna as what they were.

Stock OptunaSearch (ray 2.60) tells Optuna COMPLETE with the last result's metric, or FAIL
only when the trainable raised, or PRUNED when the metric is missing; and it reports the
metric at every Tune iteration as an intermediate value. Here trials never raise for a failed
trainer (the sweep must go on), so the outcome travels as the result's `status`:

  completed  -> COMPLETE, value = the objective (inf when a *_to_target run missed the target)
  diverged   -> COMPLETE, value = inf (worst: samplers learn to avoid the region)
  failed, rejected, errored trainable -> FAIL (no value; the reason is a user attribute)
  stopped (time limit), pruned (ASHA)  -> PRUNED (Optuna keeps the last intermediate value)

Intermediate values are the val losses keyed by trainer step. Each trial's Optuna number is
added to its Tune config (`optuna_trial`) so the trainable and the tracking know it, and each
Optuna trial gets user attributes `status`, `tune_trial_id` and `error`. A run of a horizon
sweep carries its rung (orchestrator/horizon.py) from its user attributes into its config too.
"""

from __future__ import annotations

import logging
import math
import pickle
from typing import Any

import sqlalchemy.exc
from optuna.exceptions import StorageInternalError
from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from orchestrator.errors import first_line
from orchestrator.outcome import (
    COMPLETED,
    DIVERGED,
    MARGIN,
    MEAN_CURVE,
    OBJECTIVE,
    PRUNED,
    RETRY_OF,
    STATUS,
    STOPPED,
    TRIAL_NUMBER,
    VAL_LOSS,
    carries_val,
    final_status,
    finite,
)
from orchestrator.private_api import completed_ids, optuna_study, optuna_trial
from orchestrator.records import Rung

logger = logging.getLogger(__name__)

USER_ATTR_MAX = 2000  # characters of an error kept in the Optuna study
STORE_ERRORS = (StorageInternalError, sqlalchemy.exc.SQLAlchemyError, OSError)  # the study cannot be written


def optuna_state(status: str) -> TrialState:
    if status in (COMPLETED, DIVERGED):
        return TrialState.COMPLETE
    if status in (STOPPED, PRUNED):
        return TrialState.PRUNED
    return TrialState.FAIL


class SweepSearch(OptunaSearch):
    """OptunaSearch over a define-by-run space, storing the study in an RDB (see module doc)."""

    # Tune pickles its searcher into tuner.pkl and searcher-state files (under the sweep's folder and
    # Ray's session folder) for Tuner.restore, which this driver never uses (orchestrator/resume.py):
    # the study, its trials and its storage stay out, for the storage URL may hold a password.
    _NOT_PICKLED = ("_storage", "_ot_study", "_ot_trials")

    def __init__(self, *args: Any, **kwargs: Any):
        self._reported_steps: dict[str, set[int]] = {}
        self.store_error = ""  # the first failed write to the study, as one line
        super().__init__(*args, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._NOT_PICKLED}

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__getstate__(), f)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """A new trial's config; FINISHED once the study cannot be written (a full disk, a lost
        database): no new trials start, the running ones end, and the driver says why."""
        if self.store_error:
            return Searcher.FINISHED
        try:
            return self._propose(trial_id)
        except STORE_ERRORS as exc:
            self._lost_store(exc)
            return Searcher.FINISHED

    def _lost_store(self, exc: BaseException) -> None:
        if not self.store_error:
            self.store_error = first_line(exc)
            logger.warning("the Optuna study could not be written (%s): no new trials start", self.store_error)

    def _propose(self, trial_id: str) -> dict[str, Any] | str | None:
        config = super().suggest(trial_id)
        if isinstance(config, dict):
            ot_trial = optuna_trial(self, trial_id)
            config[TRIAL_NUMBER] = ot_trial.number
            retry_of = ot_trial.user_attrs.get(RETRY_OF)  # set when --resume enqueued it
            if retry_of is not None:
                config[RETRY_OF] = retry_of
            rung = Rung.of(ot_trial.user_attrs) or self._new_rung(ot_trial)
            if rung is not None:
                config.update(rung.attrs())
            ot_trial.set_user_attr("tune_trial_id", trial_id)
        return config

    def _new_rung(self, ot_trial) -> Rung | None:
        """The rung of a proposal that came with none (the sampler's own): none outside a horizon sweep."""
        return None

    def _open(self, trial_id: str) -> bool:
        """Whether the trial is one this searcher asked the study for and has not told yet."""
        return optuna_trial(self, trial_id) is not None and trial_id not in completed_ids(self)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if not self._open(trial_id):
            return
        try:
            self._report(trial_id, result)
        except STORE_ERRORS as exc:
            self._lost_store(exc)

    def _report(self, trial_id: str, result: dict[str, Any] | None) -> None:
        """The result's val loss as the Optuna trial's intermediate value at its trainer step."""
        if not result or not carries_val(result):
            return
        trial = optuna_trial(self, trial_id)
        reported = self._reported_steps.setdefault(trial_id, set())
        if result["step"] not in reported:
            reported.add(result["step"])
            trial.report(float(result[VAL_LOSS]), result["step"])

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if not self._open(trial_id):
            return
        ot_trial = optuna_trial(self, trial_id)
        status = final_status(result, error)
        state = optuna_state(status)
        value = None
        if state == TrialState.COMPLETE:
            value = (result or {}).get(OBJECTIVE)
            value = float(value) if finite(value) else math.inf
        try:
            # Tune skips on_trial_result for a result its scheduler answers STOP: the val that
            # got a trial pruned, and the last val event of a completed run (ASHA stops at max_t)
            self._report(trial_id, result)
            for step, loss in (result or {}).get(MEAN_CURVE) or []:  # a config of several seeds: their mean
                self._report(trial_id, {VAL_LOSS: loss, "step": step, STATUS: COMPLETED})
            if finite(margin := (result or {}).get(MARGIN)):
                ot_trial.set_user_attr(MARGIN, margin)
            ot_trial.set_user_attr("status", status)
            reason = (result or {}).get("error") or ("the trainable raised; see the Tune trial's error.txt" if error else "")
            if reason:
                ot_trial.set_user_attr("error", str(reason)[:USER_ATTR_MAX])
            try:
                optuna_study(self).tell(ot_trial, value, state=state)
            except RuntimeError as exc:
                # GridSampler.after_trial calls study.stop() once the grid is used up, which
                # raises outside study.optimize(); tell() has stored the trial by then (finally:)
                if "Study.stop" not in str(exc):
                    raise
        except STORE_ERRORS as exc:  # a lost store must not end the sweep
            self._lost_store(exc)
        completed_ids(self).add(trial_id)
