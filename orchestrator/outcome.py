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
from dataclasses import dataclass
from typing import Any

from analysis.track3 import earliest_passing_step

RUNNING, COMPLETED, DIVERGED, FAILED, STOPPED, REJECTED, PRUNED, INTERRUPTED = (
    "running", "completed", "diverged", "failed", "stopped", "rejected", "pruned", "interrupted",
)  # fmt: skip
FINAL_STATUSES = (COMPLETED, DIVERGED, FAILED, STOPPED, REJECTED)

# Keys of the results a trial reports to Tune.
OBJECTIVE = "objective"  # the searcher's metric: the space's objective, "so far" in intermediate results
VAL_LOSS = "val_loss"  # the scheduler's metric (ASHA)
PROGRESS = "progress"  # the scheduler's time attribute: step / schedule.num_iterations
STATUS = "status"
MARGIN = "margin"  # the validity margin at the objective's step (Score.margin): breaks ties
# A config run with several seeds (budget.seeds): its runs' results carry their seed, and its final
# result the runs (seed, status, error, final_val_loss, step, train_time_ms) and the mean val curve
SEED = "seed"
SEED_RUNS = "seed_runs"
MEAN_CURVE = "mean_curve"
SEED_ENV = "SPEEDRUN_SEED"  # what a script may read its seed from (the built-in trainer's is runtime.seed)
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
    """Whether a result holds a val event's numbers of the trial's config: every intermediate
    result (but those of one seed's run of several), and the final result of a completed run (its
    last val event, or its seeds' mean). Other final results repeat an older val
    loss next to a later step, so they carry none."""
    status = result.get(STATUS)
    return (status in (RUNNING, COMPLETED) and finite(result.get(VAL_LOSS)) and isinstance(result.get("step"), int)
            and SEED not in result)  # one seed's run of a config: its own val, not the config's


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


Val = tuple[int, float, float]  # one val event of a run: (step, val loss, train_time_ms)


@dataclass(frozen=True)
class Score:
    """A config's objective from its runs (one per seed), and the validity margin at that point:
    `(target - mean) * n**0.5`, which breaks ties between configs of the same steps_to_target."""

    value: float
    margin: float = -math.inf


def score(metric: str, target: float, margin: float, runs: list[list[Val]]) -> Score:
    """The objective of a config from the val events of its runs (minimised; inf when unmet):

    - final_val_loss: the mean over runs of each one's last val loss;
    - time_to_target: the mean train time at the earliest val step whose mean loss is <= target;
    - steps_to_target: the earliest val step whose mean loss passes the optimization track's
      validity rule, `(target - mean) * n**0.5 >= margin` (analysis.track3; 0.004 in the track's
      rules); one run needs a loss of target - margin or less.
    Steps count only where every run has a val event.
    """
    if not runs or not all(runs):
        return Score(math.inf)
    n = len(runs)
    if metric == "final_val_loss":
        mean = sum(run[-1][1] for run in runs) / n
        return Score(mean if finite(mean) else math.inf, (target - mean) * n**0.5)
    by_step = [{step: (loss, ms) for step, loss, ms in run} for run in runs]
    steps = sorted(set.intersection(*(set(b) for b in by_step)))
    if metric == "steps_to_target":
        finite_steps = [s for s in steps if all(finite(b[s][0]) for b in by_step)]
        earliest = earliest_passing_step({s: [b[s][0] for b in by_step] for s in finite_steps}, target, margin)
        return Score(float(earliest.step), earliest.row.lhs) if earliest.step is not None else Score(math.inf)
    for step in steps:
        mean = sum(b[step][0] for b in by_step) / n
        if mean <= target:
            return Score(sum(b[step][1] for b in by_step) / n, (target - mean) * n**0.5)
    return Score(math.inf)


class Objective:
    """Folds one run's `val` events into the sweep's objective (`score` of that run alone). A
    diverged, failed, stopped or rejected run has no objective (inf)."""

    def __init__(self, metric: str, target: float, margin: float = 0.0):
        if metric not in ("final_val_loss", "time_to_target", "steps_to_target"):
            raise ValueError(f"unknown objective metric {metric!r}")
        self.metric, self.target, self.margin = metric, target, margin
        self.vals: list[Val] = []

    @property
    def last_val_loss(self) -> float | None:
        return self.vals[-1][1] if self.vals else None

    def add(self, val_event: dict[str, Any]) -> None:
        loss = val_event.get("val_loss")
        ms = val_event.get("train_time_ms")
        self.vals.append((val_event["step"], float(loss) if finite(loss) else math.nan, float(ms) if finite(ms) else math.nan))

    def score(self) -> Score:
        """The objective (and margin) if the run ended well now."""
        return score(self.metric, self.target, self.margin, [self.vals])

    def so_far(self) -> float:
        """The objective if the run ended well now (intermediate results)."""
        return self.score().value

    def final(self, status: str) -> float:
        """The objective of a run that ended with `status`."""
        return self.so_far() if status == COMPLETED else math.inf
