"""Two record attempts of the main track compared: does NEW beat OLD, not only 3.28?

Final val losses, and train times where both attempts have them, are compared by a one-sided
t-test that NEW is lower: paired by seed when both name the same seeds (the speedrun's advice is
to interleave the attempt with the baseline on the same node and seeds), Welch's otherwise. NEW
beats OLD when its train time is significantly lower (p < 0.01, the record rule's threshold), or,
when there are no times to compare, its final loss is.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from analysis.stats import CONFIDENCE, RECORD_P_THRESHOLD, compare
from trainer.errors import InputError

Values = Sequence[float] | Mapping[str, float]


@dataclass(frozen=True)
class Metric:
    """NEW against OLD on one measure: difference = mean NEW − mean OLD (paired: mean per-seed
    difference), its two-sided 95% CI, and the one-sided p-value that NEW is lower."""

    name: str
    n_new: int
    n_old: int
    mean_new: float
    mean_old: float
    difference: float
    ci_low: float
    ci_high: float
    p: float
    n_pairs: int | None  # None: Welch's test

    @property
    def significant(self) -> bool:
        return bool(self.p < RECORD_P_THRESHOLD)


@dataclass(frozen=True)
class AttemptComparison:
    paired: bool
    loss: Metric
    time_ms: Metric | None  # None: not both attempts have train times
    decided_by: str  # "train time" or "val loss"
    passed: bool
    confidence: float = CONFIDENCE
    threshold: float = RECORD_P_THRESHOLD


def same_seeds(new: Mapping[str, float] | None, old: Mapping[str, float] | None) -> bool:
    """Pair by seed exactly when both attempts name the same set of seeds."""
    return new is not None and old is not None and set(new) == set(old)


def compare_attempts(
    new_losses: Values, old_losses: Values, new_times: Values | None = None, old_times: Values | None = None,
    new_label: str = "NEW", old_label: str = "OLD",
) -> AttemptComparison:
    """Compare NEW to OLD; paired when all inputs are {seed: value} mappings over the same seeds.

    InputError (naming `new_label`/`old_label`) when a test cannot be made: fewer than 2 runs
    (pairs), or values without spread (no p-value).
    """
    paired = isinstance(new_losses, Mapping) and isinstance(old_losses, Mapping) and same_seeds(new_losses, old_losses)
    loss = _metric("val loss", new_losses, old_losses, paired, new_label, old_label)
    time = None
    if new_times is not None and old_times is not None:
        time = _metric("train time", new_times, old_times, paired, new_label, old_label)
    decider = time if time is not None else loss
    return AttemptComparison(paired, loss, time, "train time" if time is not None else "val loss", decider.significant)


def _metric(name: str, new: Values, old: Values, paired: bool, new_label: str, old_label: str) -> Metric:
    if paired:
        seeds = list(old)
        n_pairs = len(seeds)
        x, y = np.array([new[s] for s in seeds], float), np.array([old[s] for s in seeds], float)
        if n_pairs < 2:
            raise InputError(f"{new_label} and {old_label}: {n_pairs} seed in common; the paired t-test on {name} "
                             "needs at least 2")
        if np.all(x - y == (x - y)[0]):
            raise InputError(f"{new_label} and {old_label}: every seed's {name} differs by the same "
                             f"{(x - y)[0]:.6g}; the paired t-test needs differences that vary (no spread, no p-value)")
    else:
        n_pairs = None
        x, y = _array(new), _array(old)
        for label, v in ((new_label, x), (old_label, y)):
            if len(v) < 2:
                raise InputError(f"{label}: {len(v)} {name} value(s); the Welch t-test needs at least 2 runs per attempt")
        if np.all(x == x[0]) and np.all(y == y[0]):
            raise InputError(f"{new_label} and {old_label}: every run's {name} is the same within each attempt; "
                             "the Welch t-test needs values that vary (no spread, no p-value)")
    with warnings.catch_warnings():  # one attempt without spread: scipy warns; Welch's test is still defined
        warnings.simplefilter("ignore", RuntimeWarning)
        if paired:
            p = stats.ttest_rel(x, y, alternative="less").pvalue
            c = compare(dict(zip(seeds, y)), dict(zip(seeds, x)))
        else:
            p = stats.ttest_ind(x, y, equal_var=False, alternative="less").pvalue
            c = compare(list(y), list(x), paired=False)
    return Metric(name, len(x), len(y), float(x.mean()), float(y.mean()), c.difference, c.ci_low, c.ci_high,
                  float(p), n_pairs)


def _array(values: Values) -> np.ndarray:
    x = np.asarray(list(values.values()) if isinstance(values, Mapping) else list(values), float)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"non-finite values: {values!r}")
    return x
