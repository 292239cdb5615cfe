"""Ablation statistics from a sweep's completed runs: each arm's spread, each variant against
the baseline (paired by seed where the seeds allow), with Holm's correction across variants."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from analysis import stats
from analysis.runs import Trial

BASELINE = "baseline"
EFFECT_OF_INTEREST = 0.002  # a typical speedrun gain in final val loss (DESIGN.md)
POWER = 0.8
ALPHA = 0.05

ArmValues = dict[str, float] | list[float]  # by seed when every run of the arm has its own seed


@dataclass(frozen=True)
class Arm:
    """One arm's completed runs: final val losses and train times, keyed by seed when possible."""

    name: str
    trials: list[Trial]
    loss: ArmValues
    time_s: ArmValues


@dataclass(frozen=True)
class Effect:
    """A variant against the baseline on final val loss (and on train time)."""

    variant: str
    loss: stats.Comparison
    time_s: stats.Comparison | None
    p: float  # the p-value entering Holm: paired where pairs exist, else Welch
    p_holm: float
    detectable: float  # smallest true difference found with 80% power at alpha 0.05, at this noise
    seeds_for_effect: int | None  # seeds per arm for EFFECT_OF_INTEREST


def arm_of(trial: Trial) -> str:
    return str(trial.searched.get("arm", "?"))


def seed_of(trial: Trial) -> str | None:
    seed = trial.searched.get("seed")
    return None if seed is None else str(seed)


def arms(trials: list[Trial]) -> list[Arm]:
    """The arms in trial order, baseline first, each with its completed runs only."""
    names: list[str] = []
    for t in trials:
        if arm_of(t) not in names:
            names.append(arm_of(t))
    names.sort(key=lambda n: n != BASELINE)
    out = []
    for name in names:
        done = [t for t in trials if arm_of(t) == name and t.completed]
        out.append(Arm(name, done, _values(done, lambda t: t.final_val_loss), _values(done, lambda t: t.train_time_s)))
    return out


def effects(all_arms: list[Arm]) -> list[Effect]:
    """Every variant with at least one completed run against the baseline; [] without a baseline."""
    base = next((a for a in all_arms if a.name == BASELINE and a.trials), None)
    if base is None:
        return []
    rows = []
    for arm in all_arms:
        if arm is base or not arm.trials:
            continue
        loss = _compare(base.loss, arm.loss)
        p = loss.p_paired if loss.p_paired is not None else loss.p_welch
        std, n, paired = _noise(base, arm, loss)
        detectable = stats.detectable_effect(std, n, ALPHA, POWER, paired) if n >= 2 and std > 0 else math.nan
        needed = stats.seeds_needed(EFFECT_OF_INTEREST, std, ALPHA, POWER, paired) if std > 0 else None
        time_s = _compare(base.time_s, arm.time_s) if _finite(base.time_s) and _finite(arm.time_s) else None
        rows.append(Effect(arm.name, loss, time_s, p, math.nan, detectable, needed))
    # Holm over the variants that have a p-value at all (two runs per arm at least)
    tested = [i for i, r in enumerate(rows) if not math.isnan(r.p)]
    if tested:
        for i, adjusted in zip(tested, stats.holm([rows[i].p for i in tested])):
            rows[i] = replace(rows[i], p_holm=adjusted)
    return rows


def _values(trials: list[Trial], value: Callable[[Trial], float]) -> ArmValues:
    seeds = [seed_of(t) for t in trials]
    if None in seeds or len(set(seeds)) < len(seeds):  # no seed, or a seed run twice: cannot pair
        return [value(t) for t in trials]
    return {s: value(t) for s, t in zip(seeds, trials)}


def _compare(base: ArmValues, variant: ArmValues) -> stats.Comparison:
    """Paired on common seeds when both arms are keyed by seed and share two or more, else Welch."""
    common = isinstance(base, Mapping) and isinstance(variant, Mapping) and len(base.keys() & variant.keys()) >= 2
    return stats.compare(base, variant, paired=None if common else False)


def _noise(base: Arm, arm: Arm, loss: stats.Comparison) -> tuple[float, int, bool]:
    """(std, n, paired) of the test that compared them: per-seed differences when paired,
    else the pooled per-arm std with the smaller arm's size."""
    if loss.n_pairs is not None:
        seeds = [s for s in base.loss if s in arm.loss]
        diffs = [arm.loss[s] - base.loss[s] for s in seeds]
        return stats.summarize(diffs).std, len(diffs), True
    b, v = stats.summarize(_list(base.loss)), stats.summarize(_list(arm.loss))
    return math.sqrt((b.std**2 + v.std**2) / 2), min(b.n, v.n), False


def _list(values: ArmValues) -> list[float]:
    return list(values.values()) if isinstance(values, Mapping) else list(values)


def _finite(values: ArmValues) -> bool:
    return all(math.isfinite(v) for v in _list(values))
