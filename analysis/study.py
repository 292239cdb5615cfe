"""The sweep's Optuna study: what the searcher proposed, and which parameters mattered."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.importance import FanovaImportanceEvaluator, get_param_importances
from optuna.trial import TrialState

from trainer.errors import InputError
from trainer.uris import MASK, is_masked, shown

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class Importance:
    """Parameter importances (fANOVA, summing to 1), or why there are none (`note`)."""

    values: dict[str, float]
    note: str


def study_storage(given: str | None, recorded: str | None) -> str | None:
    """The storage to read the study from: `given` (--storage), else the one the sweep recorded.

    A sweep records its storage with the password masked, and connecting with `***` fails deep
    in the database driver: InputError saying what to pass instead."""
    storage = given or recorded
    if storage and is_masked(storage):
        wanted = storage.replace(f":{MASK}@", ":PASSWORD@", 1)
        problem = (f"--storage {storage}: its password is the mask {MASK}" if given
                   else f"the sweep recorded its Optuna storage without the password ({storage})")
        raise InputError(f"{problem}; pass the full URL: --storage {wanted}")
    return storage


def load_study(name: str, storage: str | None) -> tuple[optuna.Study | None, str]:
    """The study NAME in `storage`, or None and the reason it could not be read."""
    if not storage:
        return None, "the sweep recorded no Optuna storage (pass --storage)"
    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///"):]).is_file():
        # optuna would silently create an empty database here; relative paths are the sweep's cwd
        return None, f"no Optuna database at {storage} (run the report where the sweep ran, or pass --storage)"
    try:
        return optuna.load_study(study_name=name, storage=storage), ""
    except KeyError:
        return None, f"no Optuna study named '{name}' in {shown(storage)}"


def trial_params(study: optuna.Study | None) -> dict[int, dict[str, Any]]:
    """What the searcher chose for each trial, by trial number."""
    return {t.number: dict(t.params) for t in study.get_trials(deepcopy=False)} if study else {}


def param_importance(study: optuna.Study | None, note: str = "") -> Importance:
    """fANOVA importances of the searched parameters for the objective, when the study allows it."""
    if study is None:
        return Importance({}, note)
    complete = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]
    varying = {name for t in complete for name in t.params if len({repr(u.params.get(name)) for u in complete}) > 1}
    if len(complete) < 2 or not varying:
        return Importance({}, "not computed: it needs at least 2 complete trials with a finite objective and a "
                              f"parameter that varies between them (have {len(complete)} and {len(varying)})")
    try:
        values = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    except (ValueError, RuntimeError) as err:  # e.g. a dynamic search space Optuna cannot assess
        return Importance({}, f"not computed: {err}")
    return Importance(dict(values), f"fANOVA over {len(complete)} complete trials (optuna, seed 0)")
