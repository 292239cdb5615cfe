"""Continuing a sweep whose driver stopped (SIGKILL, a lost node, Ctrl-C) at any point.

The Optuna study and the MLflow experiment are the source of truth, not Tune's experiment
state: Tune's restore has brought searchers back wrong (ray-project/ray#30861, #30584) and
needs the same trainable and param space. Reconciling the two stores on `--resume`:

- an Optuna trial still RUNNING was cut off. If its MLflow run was already closed with a
  final status (the driver died between its MLflow and its Optuna write), Optuna is told
  that outcome. Otherwise it is marked FAIL with `status = interrupted`, its parameters are
  enqueued (user attribute `retry_of`) so the next trial the searcher asks for re-runs them,
  and its MLflow run is closed as interrupted.
- a finished Optuna trial (COMPLETE, PRUNED, FAIL other than interrupted) counts toward the
  budget and is never re-run. An MLflow run that says otherwise (left RUNNING, or closed as
  `running` by a driver that died) is closed with Optuna's outcome; a missing one is created,
  so every finished trial has exactly one run.
- a WAITING trial (enqueued, never asked for) stays queued.

The new Tune run then gets `trials - finished` samples.

A resumed sweep must mean what it meant: the space a sweep starts with is kept on its study
(`record_space`), and a resume whose space changes what a trial is (its base, params, steps,
objective, scheduler, GPUs) is refused, naming the keys (`check_same_space`). What only changes
how many trials run or how they are proposed may change.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from orchestrator.outcome import COMPLETED, FAILED, INTERRUPTED, MARGIN, OBJECTIVE, PRUNED, RETRY_OF, RUNNING, finite
from orchestrator.private_api import set_user_attrs
from orchestrator.records import Rung, TrialRecord
from orchestrator.search import optuna_state
from orchestrator.tracking import SweepTracker, flatten, run_status
from search_spaces import FIDELITY
from trainer.errors import InputError

INTERRUPTED_ERROR = "the sweep's driver stopped while this trial ran; --resume re-ran its parameters"
SPACE_ATTR = "speedrun.space"  # the study's user attribute holding what its trials mean
# keys of a space that a resume may change: how many trials, how they are proposed, where they run
MAY_CHANGE = ("name", "description", "source", "sampler", "seeds", "budget.trials", "budget.time_s", "resources.cpus")


class SpaceChanged(InputError):
    """A resume with a space whose trials would mean something else than the sweep's."""


def space_meaning(space) -> dict[str, str]:
    """The space's keys that say what a trial is, flattened (`params.optim.muon_lr.log`)."""
    flat = flatten(space.model_dump(mode="json"))
    return {k: v for k, v in flat.items() if not any(k == m or k.startswith(m + ".") for m in MAY_CHANGE)}


def record_space(study: optuna.Study, space) -> None:
    study.set_user_attr(SPACE_ATTR, space_meaning(space))


def check_same_space(study: optuna.Study, space) -> None:
    """Refuse a resume whose space changes what the sweep's trials mean; a sweep recorded before
    spaces were kept on the study gets this space recorded instead."""
    before = study.user_attrs.get(SPACE_ATTR)
    now = space_meaning(space)
    if before is None:
        record_space(study, space)
        return
    changed = [f"{k} ({before.get(k, 'unset')} -> {now.get(k, 'unset')})"
               for k in sorted(before.keys() | now.keys()) if before.get(k) != now.get(k)]
    if changed:
        raise SpaceChanged(
            f"--resume: the space of sweep '{study.study_name}' changed what its trials mean: {'; '.join(changed)}. "
            "Resume with the space it ran with, or start a new sweep under another --name "
            f"(a resume may change only {', '.join(MAY_CHANGE[3:])})"
        )


@dataclass
class Carryover:
    """What a resumed sweep starts from."""

    finished: list[TrialRecord] = field(default_factory=list)  # count toward the budget
    requeued: list[int] = field(default_factory=list)  # Optuna numbers of interrupted trials
    repaired: int = 0  # MLflow runs closed or created from Optuna's record


def reconcile(
    study: optuna.Study,
    tracker: SweepTracker,
    overrides_of: Callable[[dict[str, Any]], list[str]],
    resolve: Callable[[list[str]], tuple[dict[str, Any], str] | None],
) -> Carryover:
    """Bring the study and the experiment into agreement (see the module doc); idempotent."""
    out = Carryover()
    runs = tracker.trial_runs()
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING:
            continue
        mine = runs.get(t.number, [])
        if t.state == TrialState.RUNNING:
            closed = [r for r in mine if r.info.status != "RUNNING" and r.data.tags.get("status") not in (RUNNING, INTERRUPTED)]
            if closed:
                _tell_from_mlflow(study, t, closed[0])
                t = study.get_trials(deepcopy=False)[t.number]
            else:
                _requeue(study, t)
                out.requeued.append(t.number)
                rec = _record(t, overrides_of, INTERRUPTED, INTERRUPTED_ERROR)
                for run in mine:
                    if _disagrees(run, INTERRUPTED):
                        tracker.runs[rec.tune_id] = run.info.run_id
                        tracker.finish_trial(rec)
                continue
        status = t.user_attrs.get("status") or _status_of_state(t.state)
        if status == INTERRUPTED:
            continue
        rec = _record(t, overrides_of, status, t.user_attrs.get("error", ""), mine[0] if mine else None)
        out.finished.append(rec)
        if not mine:
            tracker.start_trial(rec, *(resolve(rec.overrides) or (None, None)))
            tracker.finish_trial(rec)
            out.repaired += 1
        else:
            tracker.runs[rec.tune_id] = mine[0].info.run_id
            if _disagrees(mine[0], status):
                tracker.finish_trial(rec)
                out.repaired += 1
    return out


def _disagrees(run, status: str) -> bool:
    """Whether an MLflow run says something else than `status` (a run left open, or closed by a
    driver that died as `running`)."""
    return run.data.tags.get("status") != status or run.info.status != run_status(status)


def _status_of_state(state: TrialState) -> str:
    return {TrialState.COMPLETE: COMPLETED, TrialState.PRUNED: PRUNED}.get(state, FAILED)


def _tell_from_mlflow(study: optuna.Study, t: FrozenTrial, run) -> None:
    status = run.data.tags["status"]
    state = optuna_state(status)
    value = None
    if state == TrialState.COMPLETE:
        v = run.data.metrics.get(OBJECTIVE)
        value = float(v) if finite(v) else math.inf
    set_user_attrs(study, t, status=status, **({"error": run.data.tags["error"]} if run.data.tags.get("error") else {}))
    study.tell(t.number, value, state=state)


def requeue_interrupted(study: optuna.Study, numbers: list[int]) -> None:
    """Trials this driver stopped mid-run: FAIL as interrupted, their parameters queued again,
    so the study says what the MLflow runs say and `--resume` re-runs them."""
    trials = study.get_trials(deepcopy=False)
    for number in numbers:
        if trials[number].state == TrialState.RUNNING:
            _requeue(study, trials[number])


def _requeue(study: optuna.Study, t: FrozenTrial) -> None:
    """Enqueue first, then fail: a driver killed in between leaves a RUNNING trial whose retry
    is already queued, which the next reconcile finds instead of queueing it twice."""
    queued = any(w.user_attrs.get(RETRY_OF) == t.number for w in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    if not queued:
        rung = Rung.of(t.user_attrs)  # a horizon sweep's retry runs at the same rung, for the same config
        carried = rung.attrs() if rung is not None else {}
        study.enqueue_trial(t.params, user_attrs={**carried, RETRY_OF: t.number}, skip_if_exists=False)
    set_user_attrs(study, t, status=INTERRUPTED, error=INTERRUPTED_ERROR)
    study.tell(t.number, state=TrialState.FAIL)


def _record(t: FrozenTrial, overrides_of, status: str, error: str, run=None) -> TrialRecord:
    """A TrialRecord of a trial an earlier driver ran, from Optuna (and its MLflow run's metrics)."""
    rung = Rung.of(t.user_attrs)
    try:
        overrides = overrides_of({**t.params, **({FIDELITY: rung.fidelity} if rung is not None else {})})
    except ValueError:
        overrides = []
    metrics = run.data.metrics if run is not None else {}
    start = t.datetime_start.timestamp() if t.datetime_start else None
    rec = TrialRecord(
        t.user_attrs.get("tune_trial_id") or f"optuna_{t.number}", t.number, dict(t.params), overrides,
        retry_of=t.user_attrs.get(RETRY_OF), rung=rung,
    )
    if start is not None:
        rec.started = start
    rec.finished = t.datetime_complete.timestamp() if t.datetime_complete else rec.started
    rec.status = status
    if status == COMPLETED and t.value is not None and finite(t.value):
        rec.objective = float(t.value)
    rec.curve = sorted((int(step), float(v)) for step, v in t.intermediate_values.items())
    rec.margin = float(t.user_attrs.get(MARGIN, rec.margin))
    final = metrics.get("final_val_loss")
    if not finite(final) and status == COMPLETED and rec.curve:
        # the driver died before MLflow got the final numbers; Optuna holds the last val loss
        final = rec.curve[-1][1]
    rec.final_val_loss = float(final) if finite(final) else math.inf
    rec.last = {k: metrics[k] for k in ("train_time_ms", "tokens") if k in metrics}
    if rec.curve:
        rec.last["step"] = rec.curve[-1][0]
    rec.error = error or ""
    return rec
