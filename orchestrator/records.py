"""The driver's account of each trial, built from Tune's callbacks; read by tracking and the console."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.outcome import (
    AUDIT,
    COMPLETED,
    CONFIG_TRIAL,
    OBJECTIVE,
    PROMOTED_FROM,
    RETRY_OF,
    RETUNE,
    RUNG,
    TRIAL_NUMBER,
    finite,
)
from search_spaces import FIDELITY


@dataclass(frozen=True)
class Rung:
    """Where a run of a horizon sweep stands: its rung, the horizon it ran at (a fraction of the
    full run), the rung-0 trial that first ran its config, and the trial that promoted it. A
    retune run (a new config at the last rung, `promoted_from` with one parameter moved) names
    that parameter and is its own config trial. An audit run is a config the lowest rung did not
    promote, run at the last rung all the same."""

    index: int
    fidelity: float
    config_trial: int
    promoted_from: int | None = None
    retune: str | None = None
    audit: bool = False

    @classmethod
    def of(cls, attrs: Mapping[str, Any]) -> Rung | None:
        """From a trial's Optuna user attributes or its Tune config; None outside a horizon sweep."""
        if attrs.get(RUNG) is None:
            return None
        promoted_from = attrs.get(PROMOTED_FROM)
        return cls(int(attrs[RUNG]), float(attrs[FIDELITY]), int(attrs[CONFIG_TRIAL]),
                   None if promoted_from is None else int(promoted_from), attrs.get(RETUNE), bool(attrs.get(AUDIT)))

    def attrs(self) -> dict[str, Any]:
        out = {RUNG: self.index, FIDELITY: self.fidelity, CONFIG_TRIAL: self.config_trial}
        if self.promoted_from is not None:
            out[PROMOTED_FROM] = self.promoted_from
        if self.retune is not None:
            out[RETUNE] = self.retune
        if self.audit:
            out[AUDIT] = True
        return out


@dataclass
class TrialRecord:
    tune_id: str
    number: int | None  # the Optuna trial number
    params: dict[str, Any]  # what the searcher proposed (searched numbers and fixed params)
    overrides: list[str]  # the trainer's --set KEY=VALUE list
    started: float = field(default_factory=time.time)
    finished: float | None = None
    status: str = "running"
    objective: float = math.inf
    final_val_loss: float = math.inf
    last: dict[str, Any] = field(default_factory=dict)  # the last result
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, val_loss)
    error: str = ""
    log_tail: str = ""
    retry_of: int | None = None  # the interrupted trial this one re-runs
    retries: int = 0  # times Tune re-ran it after its worker or node was lost
    rung: Rung | None = None  # a horizon sweep's run
    margin: float = -math.inf  # the validity margin at the objective's step (outcome.Score): breaks ties

    @property
    def label(self) -> str:
        return f"#{self.number}" if self.number is not None else self.tune_id

    @property
    def duration_s(self) -> float:
        return (self.finished or time.time()) - self.started

    @property
    def succeeded(self) -> bool:
        return self.status == COMPLETED and finite(self.objective)


def searched_params(config: dict[str, Any]) -> dict[str, Any]:
    """The proposal in a Tune trial config, without the bookkeeping keys Tune and we add."""
    bookkeeping = (TRIAL_NUMBER, RETRY_OF, RUNG, FIDELITY, CONFIG_TRIAL, PROMOTED_FROM, RETUNE, AUDIT)
    return {k: v for k, v in config.items() if k not in bookkeeping and not k.startswith("__")}


def best_record(records: list[TrialRecord]) -> TrialRecord | None:
    """The completed trial with the lowest finite objective (ties: the wider validity margin, then
    the earlier trial: two configs that pass at the same step differ in how clearly). In a
    horizon sweep, among the runs of the highest rung any completed run reached: shorter runs
    end at higher losses, so only runs of one length compare."""
    done = [r for r in records if r.succeeded]
    top = max((r.rung.index for r in done if r.rung is not None), default=None)
    if top is not None:
        done = [r for r in done if r.rung is not None and r.rung.index == top]
    return min(done, key=rank) if done else None


def rank(rec: TrialRecord) -> tuple:
    """Sort key of the leaderboard: completed trials first, by objective, then validity margin, then number."""
    number = rec.number if rec.number is not None else 0
    return (False, rec.objective, -rec.margin, number) if rec.succeeded else (True, 0.0, 0.0, number)


def objective_of(result: dict[str, Any]) -> float:
    value = result.get(OBJECTIVE)
    return float(value) if finite(value) else math.inf
