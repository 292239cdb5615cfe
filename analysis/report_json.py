"""`speedrun report NAME --json`: a sweep's or an ablation's results as one JSON object, for
scripts and agents that act on speedrun's statistics rather than re-derive them.

    {"name", "kind": "sweep" | "ablation", "objective", "target", "counts": {status: n},
     "best": TRIAL | null,                      # a sweep's best completed trial
     "trials": [TRIAL, ...],                    # finished trials, best first
     "arms": [{"name", "n", "mean", "std", "ci_low", "ci_high"}, ...],           # an ablation's
     "effects": [{"variant", "difference", "ci_low", "ci_high", "p_paired", "p_welch",
                  "p_holm", "n_pairs", "detectable", "seeds_for_effect"}, ...],   # an ablation's
     "report": the path of report.md}                                            # (the CLI adds it)
    TRIAL = {"number", "status", "objective", "final_val_loss", "train_time_s", "wall_time_s",
             "margin", "searched": {param: value}, "rung", "error"}

Numbers that are not finite (a failed trial's objective) are null.
"""

from __future__ import annotations

from typing import Any

from analysis import stats
from analysis.ablation import arms, effects
from analysis.runs import Sweep, Trial, load_sweep
from analysis.sweep_report import best_trial, ranked
from analysis.tables import finite_json


def report_json(name: str, tracking_uri: str) -> dict[str, Any]:
    """Sweep or ablation NAME's results (see the module docstring)."""
    sweep = load_sweep(name, tracking_uri)
    out: dict[str, Any] = {
        "name": sweep.name, "kind": sweep.kind, "objective": sweep.objective, "target": sweep.target,
        "counts": sweep.counts(), "trials": [_trial(t) for t in ranked(sweep.trials)],
    }
    if sweep.kind == "ablation":
        out.update(_ablation(sweep))
    else:
        best = best_trial(sweep.trials)
        out["best"] = _trial(best) if best is not None else None
    return finite_json(out)


def _ablation(sweep: Sweep) -> dict[str, Any]:
    all_arms = arms(sweep.trials)
    summaries = [(a.name, stats.summarize(list(a.loss.values()) if isinstance(a.loss, dict) else a.loss))
                 for a in all_arms if a.loss]
    return {
        "arms": [{"name": n, "n": s.n, "mean": s.mean, "std": s.std, "ci_low": s.ci_low, "ci_high": s.ci_high}
                 for n, s in summaries],
        "effects": [{"variant": e.variant, "difference": e.loss.difference, "ci_low": e.loss.ci_low,
                     "ci_high": e.loss.ci_high, "p_paired": e.loss.p_paired, "p_welch": e.loss.p_welch,
                     "p_holm": e.p_holm, "n_pairs": e.loss.n_pairs, "detectable": e.detectable,
                     "seeds_for_effect": e.seeds_for_effect}
                    for e in effects(all_arms)],
    }


def _trial(t: Trial) -> dict[str, Any]:
    return {
        "number": t.number, "status": t.status, "objective": t.objective, "final_val_loss": t.final_val_loss,
        "train_time_s": t.train_time_s, "wall_time_s": t.wall_time_s, "margin": t.margin, "searched": t.searched,
        "rung": t.rung, "error": t.error,
    }
