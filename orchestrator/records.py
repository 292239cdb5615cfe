"""The driver's account of each trial, built from Tune's callbacks; read by tracking and the console."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from orchestrator.outcome import COMPLETED, OBJECTIVE, RETRY_OF, TRIAL_NUMBER, finite


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
    return {k: v for k, v in config.items() if k not in (TRIAL_NUMBER, RETRY_OF) and not k.startswith("__")}


def best_record(records: list[TrialRecord]) -> TrialRecord | None:
    """The completed trial with the lowest finite objective (ties: the earlier trial)."""
    done = [r for r in records if r.succeeded]
    return min(done, key=lambda r: (r.objective, r.number if r.number is not None else 0)) if done else None


def objective_of(result: dict[str, Any]) -> float:
    value = result.get(OBJECTIVE)
    return float(value) if finite(value) else math.inf
