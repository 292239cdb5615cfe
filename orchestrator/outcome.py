"""What one trial's events add up to: its status, and the value of the sweep's objective.

Shared by the trainable (worker side, which computes them from the trainer's events) and the
driver (which reads them back from Tune results). No Ray, MLflow or Optuna here.

Statuses of a trial:
  running    an intermediate result (one `val` event); never a final status
  completed  the trainer ran its whole schedule
  diverged   the trainer saw a non-finite loss (exit 3)
  failed     the trainer crashed or rejected its input at run time (exit 1 / 2, or a signal)
  stopped    the trainer was stopped by SIGTERM: the sweep's per-trial time limit (exit 4)
  rejected   the proposal violates the space's constraints; the trainer never started
  pruned     Tune's scheduler (ASHA) stopped the trial after an intermediate result
  interrupted  the sweep's driver stopped (Ctrl-C, killed) while the trial ran; `--resume`
             marks it FAIL in Optuna and re-runs its parameters as a new trial
"""

from __future__ import annotations

import math
from typing import Any

RUNNING, COMPLETED, DIVERGED, FAILED, STOPPED, REJECTED, PRUNED, INTERRUPTED = (
    "running", "completed", "diverged", "failed", "stopped", "rejected", "pruned", "interrupted",
)  # fmt: skip
FINAL_STATUSES = (COMPLETED, DIVERGED, FAILED, STOPPED, REJECTED)

# Keys of the results a trial reports to Tune.
OBJECTIVE = "objective"  # the searcher's metric: the space's objective, "so far" in intermediate results
VAL_LOSS = "val_loss"  # the scheduler's metric (ASHA)
PROGRESS = "progress"  # the scheduler's time attribute: step / schedule.num_iterations
STATUS = "status"
TRIAL_NUMBER = "optuna_trial"  # added to each trial's config by the searcher
RETRY_OF = "retry_of"  # ... with the number of the interrupted trial it re-runs (sweep --resume)
# A horizon sweep's run (scheduler: horizon), as Optuna user attributes and in its Tune config,
# next to `fidelity` (search_spaces.FIDELITY): its rung, the rung-0 trial that first ran its
# config, and the trial whose result promoted it; a run of the full-length retune after the
# halving also names the parameter it moved
RUNG = "rung"
CONFIG_TRIAL = "config_trial"
PROMOTED_FROM = "promoted_from"
RETUNE = "retune"
AUDIT = "audit"

EXIT_CODE_STATUS = {0: COMPLETED, 1: FAILED, 2: FAILED, 3: DIVERGED, 4: STOPPED}


def status_from_exit(code: int | None) -> str:
    """The status of a trainer that exited with `code` without writing its `end` event."""
    if code is None:
        return FAILED
    return EXIT_CODE_STATUS.get(code, FAILED)


def final_status(result: dict[str, Any] | None, error: bool = False) -> str:
    """A finished Tune trial's status, from its last result: a trial whose last result is an
    intermediate one was stopped by the scheduler (pruned); an errored trainable failed."""
    if error or not result:
        return FAILED
    status = result.get(STATUS)
    if status in FINAL_STATUSES:
        return status
    return PRUNED


def carries_val(result: dict[str, Any]) -> bool:
    """Whether a result holds a val event's numbers: every intermediate result, and the final
    result of a completed run (its last val event). Other final results repeat an older val
    loss next to a later step, so they carry none."""
    status = result.get(STATUS)
    return status in (RUNNING, COMPLETED) and finite(result.get(VAL_LOSS)) and isinstance(result.get("step"), int)


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class Objective:
    """Folds a trial's `val` events into the sweep's objective (minimised; inf when unmet).

    - final_val_loss: the last val loss of a completed run;
    - time_to_target: train_time_ms at the first val event with val_loss <= target;
    - steps_to_target: the step of that event.
    A diverged, failed, stopped or rejected run has no objective (inf).
    """

    def __init__(self, metric: str, target: float):
        if metric not in ("final_val_loss", "time_to_target", "steps_to_target"):
            raise ValueError(f"unknown objective metric {metric!r}")
        self.metric = metric
        self.target = target
        self.last_val_loss: float | None = None
        self.reached: dict[str, Any] | None = None  # the first val event at or below target

    def add(self, val_event: dict[str, Any]) -> None:
        loss = val_event.get("val_loss")
        self.last_val_loss = float(loss) if finite(loss) else math.nan
        if self.reached is None and finite(loss) and loss <= self.target:
            self.reached = val_event

    def so_far(self) -> float:
        """The objective if the run ended well now (intermediate results)."""
        if self.metric == "final_val_loss":
            return self.last_val_loss if finite(self.last_val_loss) else math.inf
        if self.reached is None:
            return math.inf
        key = "train_time_ms" if self.metric == "time_to_target" else "step"
        return float(self.reached[key])

    def final(self, status: str) -> float:
        """The objective of a run that ended with `status`."""
        return self.so_far() if status == COMPLETED else math.inf
