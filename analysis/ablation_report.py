"""The ablation report's sections: per-arm summaries, the effect table against the baseline, figures."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from analysis import figures, stats
from analysis.ablation import ALPHA, BASELINE, EFFECT_OF_INTEREST, POWER, Arm, Effect
from analysis.runs import Sweep, val_curve
from analysis.tables import DASH, interval, loss, markdown_table, pvalue, seconds, signed

EFFECT_LEGEND = (
    f"Δ = variant − {BASELINE} (negative: the variant ends lower). Δ and its 95% CI are over per-seed differences "
    "when the arms share seeds (pairs), else Welch's. Holm adjusts across variants the paired p (Welch's where "
    f"unpaired). Detectable Δ: the smallest true |Δ| this many seeds find with {POWER:.0%} power at α = {ALPHA} "
    f"given the observed noise; seeds for {EFFECT_OF_INTEREST}: seeds per arm to find a Δ of {EFFECT_OF_INTEREST} "
    "with that power."
)


def arms_table(all_arms: list[Arm]) -> str:
    """Per arm: n, mean, std and 95% CI of the final val loss and of the train time."""
    rows = []
    for arm in all_arms:
        if not arm.trials:
            rows.append([arm.name, "0", *[DASH] * 6])
            continue
        lo, t = stats.summarize(arm.loss), stats.summarize(arm.time_s)
        rows.append([arm.name, str(lo.n), loss(lo.mean), loss(lo.std), interval(lo.ci_low, lo.ci_high),
                     seconds(t.mean), seconds(t.std), interval(t.ci_low, t.ci_high, seconds)])
    headers = ["arm", "n", "final val loss", "std", "95% CI", "train time (s)", "std (s)", "95% CI (s)"]
    return markdown_table(headers, rows, [False] + [True] * 7)


def effects_table(rows: list[Effect]) -> str:
    """Each variant against the baseline: Δ with CI, paired / Welch / Holm p, power figures."""
    if not rows:
        return f"No variant to compare: the '{BASELINE}' arm or every variant has no completed run."
    table = [
        [r.variant, _n(r.loss), signed(r.loss.difference), interval(r.loss.ci_low, r.loss.ci_high, signed),
         pvalue(r.loss.p_paired), pvalue(r.loss.p_welch), pvalue(r.p_holm), loss(r.detectable),
         str(r.seeds_for_effect) if r.seeds_for_effect else DASH, _signed_s(r.time_s.difference if r.time_s else None)]
        for r in rows
    ]
    headers = ["variant", "n", "Δ final val loss", "95% CI", "p paired", "p Welch", "p Holm", "detectable Δ",
               f"seeds for {EFFECT_OF_INTEREST}", "Δ train time (s)"]
    return markdown_table(headers, table, [False] + [True] * 9)


# what makes timings comparable: the host is left out (a cluster's nodes share a fingerprint)
TIMING_KEYS = ("gpu", "gpu_count", "driver", "cuda", "torch", "triton", "cpu")


def environments_section(all_arms: list[Arm]) -> str:
    """The environment fingerprints the completed runs ran in, by arm; a warning when timings mix them."""
    seen: dict[tuple[tuple[str, str], ...], dict[str, int]] = {}
    for arm in all_arms:
        for t in arm.trials:
            key = tuple((k, t.env[k]) for k in TIMING_KEYS if k in t.env)
            counts = seen.setdefault(key, {})
            counts[arm.name] = counts.get(arm.name, 0) + 1
    rows = [[", ".join(f"{k} {v}" for k, v in key) or "(not recorded)",
             ", ".join(f"{a} {n}" for a, n in counts.items())] for key, counts in seen.items()]
    text = "## Environments\n\n" + markdown_table(["fingerprint", "completed runs by arm"], rows, [False, False])
    if len(seen) > 1:
        text += ("\n\n**Timings mix environments**: train-time differences between arms compare unlike machines; "
                 "compare timings within one fingerprint (losses are unaffected).")
    return text


def ablation_sections(sweep: Sweep, all_arms: list[Arm], rows: list[Effect], out_dir: Path) -> list[str]:
    """The Markdown sections after the header, with their figures written into out_dir."""
    sections = [
        "## Arms (completed runs)\n\n" + arms_table(all_arms),
        f"## Variants against {BASELINE} (final val loss)\n\n{effects_table(rows)}\n\n{EFFECT_LEGEND}",
        environments_section(all_arms),
    ]
    drawn = [a for a in all_arms if a.trials]
    if drawn:
        summaries = [stats.summarize(a.loss) for a in drawn]
        figures.arm_points([a.name for a in drawn], [_by_seed(a.loss) for a in drawn], [s.mean for s in summaries],
                           [(s.ci_low, s.ci_high) for s in summaries], out_dir / "arms.png")
        curves = {a.name: [val_curve(sweep.tracking_uri, t.run_id) for t in a.trials] for a in drawn}
        figures.arm_curves(curves, out_dir / "arm_curves.png", BASELINE)
        sections += ["## Final val loss per arm\n\n![final val loss per arm](arms.png)",
                     "## Val loss curves per arm\n\n![val loss per arm](arm_curves.png)"]
    return sections


def _n(c: stats.Comparison) -> str:
    return f"{c.n_pairs} pairs" if c.n_pairs is not None else f"{c.n_baseline} vs {c.n_variant}"


def _signed_s(x: float | None) -> str:
    return f"{x:+.2f}" if x is not None and math.isfinite(x) else DASH


def _by_seed(values: Mapping[str, float] | list[float]) -> dict[str, float]:
    return dict(values) if isinstance(values, Mapping) else {str(i): v for i, v in enumerate(values)}
