"""Statistics for ablations and record attempts: is a variant's gain real, or run-to-run noise?

Arms are run with the same seeds, so comparisons pair by seed where the data says which
seed is which. Power functions are exact (noncentral t), not normal approximations: with
the handful of seeds a speedrun ablation can afford, the difference matters.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

# The speedrun's record rule (KellerJordan/modded-nanogpt README): a new record must show
# p < 0.01 that its mean final val loss is below 3.28, by
# `scipy.stats.ttest_1samp(final_losses, 3.28, alternative="less").pvalue < 0.01`.
RECORD_TARGET = 3.28
RECORD_P_THRESHOLD = 0.01

CONFIDENCE = 0.95

Values = Sequence[float] | Mapping[Hashable, float]


@dataclass(frozen=True)
class ArmSummary:
    """One arm's final losses: location, spread, and the 95% t-interval of the mean."""

    n: int
    mean: float
    std: float
    sem: float
    ci_low: float
    ci_high: float
    min: float
    max: float


@dataclass(frozen=True)
class Comparison:
    """Variant − baseline: the difference with its 95% CI, and both t-test p-values.

    When paired, `difference` and the CI are those of the mean per-seed difference over
    the `n_pairs` common seeds; otherwise they are Welch's, over all values of each arm.
    """

    difference: float
    ci_low: float
    ci_high: float
    p_paired: float | None
    p_welch: float
    n_baseline: int
    n_variant: int
    n_pairs: int | None


@dataclass(frozen=True)
class RecordTest:
    """The record rule applied to a set of final losses."""

    n: int
    mean: float
    std: float
    pvalue: float
    passed: bool
    target: float


def summarize(values: Values) -> ArmSummary:
    """Summarize one arm; with a single value the spread and CI are nan."""
    x = _array(values, "values")
    n = len(x)
    mean = float(x.mean())
    if n < 2:
        std = sem = low = high = math.nan
    else:
        std = float(x.std(ddof=1))
        sem = std / math.sqrt(n)
        if sem == 0:  # identical runs (a deterministic script): the interval is the point
            low = high = mean
        else:
            low, high = (float(v) for v in stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=sem))
    return ArmSummary(n, mean, std, sem, low, high, float(x.min()), float(x.max()))


def compare(baseline: Values, variant: Values, paired: bool | None = None) -> Comparison:
    """Compare a variant to the baseline, paired by seed when the data allows or says so.

    paired=None pairs exactly when both arms are {seed: value} mappings (on their common
    seeds); paired=True also accepts two sequences of equal length, paired by position.
    Arms without spread (identical runs) have nan p-values and CIs, without scipy's warnings.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _compare(baseline, variant, paired)


def _compare(baseline: Values, variant: Values, paired: bool | None) -> Comparison:
    b_all, v_all = _array(baseline, "baseline"), _array(variant, "variant")
    welch_ok = min(len(b_all), len(v_all)) >= 2
    welch = stats.ttest_ind(v_all, b_all, equal_var=False) if welch_ok else None
    p_welch = float(welch.pvalue) if welch else math.nan

    pairs = _pairs(baseline, variant, b_all, v_all, paired)
    if pairs is None:
        low, high = welch.confidence_interval(CONFIDENCE) if welch else (math.nan, math.nan)
        difference = float(v_all.mean() - b_all.mean())
        return Comparison(
            difference, float(low), float(high), None, p_welch, len(b_all), len(v_all), None
        )

    b, v = pairs
    if len(b) >= 2:
        rel = stats.ttest_rel(v, b)
        p_paired = float(rel.pvalue)
        low, high = rel.confidence_interval(CONFIDENCE)
    else:
        p_paired, low, high = math.nan, math.nan, math.nan
    difference = float((v - b).mean())
    return Comparison(
        difference, float(low), float(high), p_paired, p_welch, len(b_all), len(v_all), len(b)
    )


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order."""
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1 or np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"holm needs a flat list of p-values in [0, 1], got {pvalues!r}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    # the k-th smallest is scaled by (m - k); the running max keeps a larger raw p from
    # getting a smaller adjusted one, which would let it be rejected while a smaller isn't
    stepped = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p[order]), 1.0)
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted.tolist()


def power(effect: float, std: float, n: int, alpha: float = 0.05, paired: bool = True) -> float:
    """Exact power of the two-sided t-test to detect a true mean difference `effect`.

    paired: one-sample test on n per-seed differences, `std` their std (df = n - 1).
    unpaired: two arms of n seeds each, `std` the per-arm std (df = 2n - 2).
    """
    _check_power_args(std=std, n=n, alpha=alpha)
    return _power_d(effect / std, n, alpha, paired)


def detectable_effect(
    std: float, n: int, alpha: float = 0.05, power: float = 0.8, paired: bool = True
) -> float:
    """The smallest true mean difference that n seeds detect with the given power."""
    _check_power_args(std=std, n=n, alpha=alpha, target=power)

    def shortfall(d: float) -> float:
        return _power_d(d, n, alpha, paired) - power

    # power is alpha at d = 0 and rises to 1, so doubling finds a bracket
    hi = 1.0
    while shortfall(hi) < 0:
        hi *= 2
    return std * optimize.brentq(shortfall, 0.0, hi, xtol=1e-12, rtol=1e-12)


def seeds_needed(
    effect: float, std: float, alpha: float = 0.05, power: float = 0.8, paired: bool = True
) -> int:
    """The fewest seeds (per arm) whose two-sided t-test reaches the power for `effect`."""
    _check_power_args(std=std, alpha=alpha, target=power)
    if effect == 0:
        raise ValueError("a zero effect is never detected with power above alpha")
    d = effect / std

    def enough(n: int) -> bool:
        return _power_d(d, n, alpha, paired) >= power

    # power rises with n: double to bracket, then bisect for the smallest n that suffices
    lo, hi = 1, 2
    while not enough(hi):
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi


def record_test(final_losses: Values, target: float = RECORD_TARGET) -> RecordTest:
    """Apply the speedrun record rule; a single run has no p-value and does not pass."""
    x = _array(final_losses, "final_losses")
    s = summarize(x)
    pvalue = math.nan
    if s.n >= 2:
        with warnings.catch_warnings():  # identical losses: scipy warns of precision loss, p is nan or 0/1
            warnings.simplefilter("ignore", RuntimeWarning)
            pvalue = float(stats.ttest_1samp(x, target, alternative="less").pvalue)
    return RecordTest(s.n, s.mean, s.std, pvalue, bool(pvalue < RECORD_P_THRESHOLD), target)


def _power_d(d: float, n: int, alpha: float, paired: bool) -> float:
    """Power for a standardized effect d = effect / std."""
    if paired:
        df, nc = n - 1, d * math.sqrt(n)
    else:
        df, nc = 2 * n - 2, d * math.sqrt(n / 2)
    crit = stats.t.ppf(1 - alpha / 2, df)
    # the lower tail as the upper tail of the mirrored distribution: scipy's nct.cdf(-crit)
    # returns nan for some large nc at df = 1 (2 seeds), where this form stays finite
    return float(stats.nct.sf(crit, df, nc) + stats.nct.sf(crit, df, -nc))


def _check_power_args(
    std: float, alpha: float, n: int | None = None, target: float | None = None
) -> None:
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n is not None and not (isinstance(n, int | np.integer) and n >= 2):
        raise ValueError(f"a t-test needs n >= 2 seeds, got {n!r}")
    # at zero effect the power already equals alpha, so only targets above it mean anything
    if target is not None and not alpha < target < 1:
        raise ValueError(f"power must be in (alpha, 1) = ({alpha}, 1), got {target}")


def _array(values: Values, name: str) -> np.ndarray:
    x = np.asarray(list(values.values()) if isinstance(values, Mapping) else values, float)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"{name} must be a non-empty flat list of numbers, got {values!r}")
    if not np.all(np.isfinite(x)):
        # a diverged run's nan/inf loss would silently turn every statistic into nan
        raise ValueError(f"{name} has non-finite values: {values!r}")
    return x


def _pairs(
    baseline: Values, variant: Values, b: np.ndarray, v: np.ndarray, paired: bool | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """The aligned (baseline, variant) values to pair, or None when not pairing."""
    both_keyed = isinstance(baseline, Mapping) and isinstance(variant, Mapping)
    if paired is False or (paired is None and not both_keyed):
        return None
    if both_keyed:
        seeds = [s for s in baseline if s in variant]
        if not seeds:
            raise ValueError(
                f"baseline seeds {sorted(baseline, key=str)} and variant seeds "
                f"{sorted(variant, key=str)} have none in common to pair on"
            )
        return (
            np.array([baseline[s] for s in seeds], float),
            np.array([variant[s] for s in seeds], float),
        )
    if isinstance(baseline, Mapping) or isinstance(variant, Mapping):
        raise ValueError("pairing needs both arms keyed by seed, or both as sequences")
    if len(b) != len(v):
        raise ValueError(f"paired arms need equal lengths, got {len(b)} and {len(v)}")
    return b, v
