"""How many runs a record claim needs: the chance that an attempt of N runs passes the rule.

The attempt's true mean final val loss is `target − delta` and its runs scatter around it
with std `sigma`. Three estimates: exact for the record rule (noncentral t), exact for the
optimization track's z-test rule (normal), and a bootstrap from observed runs, which keeps
their actual shape (outliers, skew) instead of assuming normal runs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from analysis.stats import RECORD_P_THRESHOLD, RECORD_TARGET
from analysis.track3 import MARGIN as TRACK3_MARGIN
from trainer.errors import InputError

if TYPE_CHECKING:  # analysis.runs loads mlflow, which only --from needs
    from analysis.runs import Sweep

# The optimization track's rule (modded-nanogpt records/track_3_optimization/README.md, Rules,
# item 3): a one-sided z-test at p < .001 assuming σ = 0.0013 for every attempt, stated
# precisely as `(3.28 - avg_loss) * num_runs**0.5 >= 0.004` (3.09σ = 0.004). The track's numbers
# (σ, the margin) are owned by analysis.track3; TRACK3_MARGIN here is its MARGIN.

GOALS = (0.8, 0.9, 0.95)
RUNS_TABLE = (*range(3, 13), 14, 16, 18, 20, 24, 28, 32, 36, 40)
BOOTSTRAP_RESAMPLES = 10_000
MAX_RUNS = 10_000  # far beyond any attempt; a goal not reached by then is reported as unreachable


@dataclass(frozen=True)
class RulePlan:
    """One rule: its pass probability at each number of runs, and the fewest runs per goal."""

    probability: dict[int, float]
    runs_needed: dict[float, int | None]  # None: not reached within MAX_RUNS


@dataclass(frozen=True)
class Bootstrap:
    """A resampled pass probability with its Monte-Carlo standard error."""

    probability: float
    se: float
    resamples: int


@dataclass(frozen=True)
class Plan:
    """Pass probabilities of an attempt under the record rule, the track-3 rule and a bootstrap."""

    target: float
    sigma: float
    delta: float
    runs: int
    record: RulePlan
    track3: RulePlan
    bootstrap: dict[int, Bootstrap] | None  # by number of runs; None without observed losses


def record_pass_probability(n: int, sigma: float, delta: float, alpha: float = RECORD_P_THRESHOLD) -> float:
    """Exact P(n normal runs pass the record rule): a one-sided one-sample t-test at alpha."""
    _check(n, sigma, n_min=2)
    df = n - 1
    # t = (mean − target) / (s/√n) ~ nct(df, −delta·√n/sigma) and passes below t.ppf(alpha, df).
    # Mirrored here (−t ~ nct(df, +delta·√n/sigma) passes above t.ppf(1 − alpha, df)) because
    # scipy's nct.cdf returns nan for some large noncentralities at df = 1, where sf stays finite.
    return float(stats.nct.sf(stats.t.ppf(1 - alpha, df), df, delta * math.sqrt(n) / sigma))


def track3_pass_probability(n: int, sigma: float, delta: float, margin: float = TRACK3_MARGIN) -> float:
    """Exact P(n normal runs pass the optimization track's rule (target − mean)·√n ≥ margin)."""
    _check(n, sigma, n_min=1)
    # target − mean ~ Normal(delta, sigma/√n); the rule asks for at least margin/√n
    return float(stats.norm.cdf((delta * math.sqrt(n) - margin) / sigma))


def bootstrap_pass_probability(
    losses: Sequence[float], n: int, target: float = RECORD_TARGET,
    resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
) -> Bootstrap:
    """P(n runs drawn with replacement from `losses` pass the record rule), by seeded resampling."""
    if n < 2 or len(losses) < 2:
        raise InputError(f"resampling needs at least 2 observed losses and 2 runs, got {len(losses)} and {n}")
    x = np.asarray(losses, float)
    draws = x[np.random.default_rng(seed).integers(0, len(x), size=(resamples, n))]
    with warnings.catch_warnings():
        # a resample that drew one run n times makes scipy warn about precision; its verdict
        # is still scipy's (the record rule's), so the warning only adds noise here
        warnings.simplefilter("ignore", RuntimeWarning)
        p = stats.ttest_1samp(draws, target, axis=1, alternative="less").pvalue
    passed = float(np.mean(p < RECORD_P_THRESHOLD))  # a nan p-value fails, as in record_test
    return Bootstrap(passed, math.sqrt(passed * (1 - passed) / resamples), resamples)


def smallest_runs(probability: Callable[[int], float], goal: float, n_min: int) -> int | None:
    """The fewest runs (≥ n_min) whose pass probability reaches `goal`; None if not by MAX_RUNS."""
    if probability(MAX_RUNS) < goal:
        return None
    # the probability rises with n whenever the goal is reachable (delta > 0): bisect, with
    # n_min − 1 standing for "not enough" without being evaluated
    lo, hi = n_min - 1, MAX_RUNS
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if probability(mid) >= goal else (mid, hi)
    return hi


def plan(
    sigma: float, delta: float, runs: int = 10, target: float = RECORD_TARGET,
    observed: Sequence[float] | None = None, table: Sequence[int] = RUNS_TABLE,
) -> Plan:
    """Both rules' pass probabilities for `runs` and each n of `table`, and the bootstrap's when observed."""
    _check(runs, sigma, n_min=2)
    ns = sorted({*table, runs})

    def rule(probability: Callable[[int, float, float], float], n_min: int) -> RulePlan:
        at = {n: probability(n, sigma, delta) for n in ns}
        needed = {g: smallest_runs(lambda n: probability(n, sigma, delta), g, n_min) for g in GOALS}
        return RulePlan(at, needed)

    boot = None
    if observed is not None:
        boot = {n: bootstrap_pass_probability(observed, n, target) for n in ns}
    return Plan(target, sigma, delta, runs, rule(record_pass_probability, 2), rule(track3_pass_probability, 1), boot)


def observed_losses(sweep: Sweep, arm: str | None = None) -> tuple[str, list[float]]:
    """A label and the completed runs' final val losses: all of a sweep's, or one ablation arm's.

    An ablation's default arm is the baseline, or its only arm (a record attempt run without a
    baseline has just `record`).
    """
    from analysis.ablation import BASELINE, arms  # loads mlflow (analysis.runs), which only --from needs

    if sweep.kind != "ablation":
        if arm is not None:
            raise InputError(f"--arm {arm}: '{sweep.name}' is a sweep, which has no arms")
        label, losses = sweep.name, [t.final_val_loss for t in sweep.trials if t.completed]
    else:
        by_name = {a.name: a for a in arms(sweep.trials)}
        if arm is None:
            arm = next(iter(by_name)) if len(by_name) == 1 else BASELINE
        if arm not in by_name:
            known = ", ".join(by_name) or "none"
            raise InputError(f"ablation '{sweep.name}' has no arm '{arm}'; its arms: {known}")
        label, losses = f"{sweep.name} arm {arm}", [t.final_val_loss for t in by_name[arm].trials]
    if len(losses) < 2:
        raise InputError(f"{label}: {len(losses)} completed run(s); resampling needs at least 2")
    return label, losses


def _check(n: int, sigma: float, n_min: int) -> None:
    if not sigma > 0:
        raise InputError(f"sigma must be positive, got {sigma}")
    if n < n_min:
        raise InputError(f"an attempt needs at least {n_min} runs here, got {n}")
