"""Whether a horizon sweep's short runs can be trusted: do they rank configs as the longer runs do?

Horizon halving promotes the configs whose short (complete, cooled-down) runs end lowest. That is
only sound if the ranking at one rung predicts the ranking at the next. For each pair of
consecutive rungs, the configs that ran at both give a Spearman rank correlation of their final
val losses. Those configs are the ones the lower rung already ranked best, a narrow range, which
lowers the correlation a full sample would show: a low value is a warning, not proof of failure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import spearmanr

from analysis.runs import Trial
from analysis.tables import markdown_table, num

MIN_CONFIGS = 5  # fewer configs at both rungs and a rank correlation says little
MIN_RHO = 0.5  # below this the lower rung's ranking is a poor guide to the next one's


@dataclass(frozen=True)
class RungPair:
    """Rungs `low` and `low + 1`: configs at both, and the Spearman correlation of their losses."""

    low: int
    fidelities: tuple[float | None, float | None]
    n: int
    rho: float  # nan when n < 3 or the losses do not vary
    p: float

    @property
    def trusted(self) -> bool:
        return self.n >= MIN_CONFIGS and math.isfinite(self.rho) and self.rho >= MIN_RHO


def completed_by_rung(trials: list[Trial]) -> dict[int, dict[int, Trial]]:
    """{rung: {config trial: its latest completed run at that rung}}."""
    out: dict[int, dict[int, Trial]] = {}
    for t in sorted(trials, key=lambda t: t.number if t.number is not None else -1):
        if t.rung is not None and t.config_trial is not None and t.completed:
            out.setdefault(t.rung, {})[t.config_trial] = t
    return out


def rung_pairs(trials: list[Trial]) -> list[RungPair]:
    """One pair per consecutive rungs of the completed runs (a config's latest run at each rung)."""
    by_rung = completed_by_rung(trials)
    loss = {k: {c: t.final_val_loss for c, t in runs.items()} for k, runs in by_rung.items()}
    fidelity = {k: next(iter(runs.values())).fidelity for k, runs in by_rung.items()}
    out = []
    for low in sorted(loss):
        if low + 1 not in loss:
            continue
        both = sorted(set(loss[low]) & set(loss[low + 1]))
        rho = p = math.nan
        if len(both) >= 3:
            a, b = [loss[low][c] for c in both], [loss[low + 1][c] for c in both]
            if len(set(a)) > 1 and len(set(b)) > 1:
                result = spearmanr(a, b)
                rho, p = float(result.statistic), float(result.pvalue)
        out.append(RungPair(low, (fidelity[low], fidelity[low + 1]), len(both), rho, p))
    return out


def rung_section(trials: list[Trial]) -> str:
    """The report's section on a horizon sweep's rungs: runs per rung, the pairs' correlations, the
    audit and the full-length retune's runs."""
    runs: dict[int, list[Trial]] = {}
    for t in trials:
        if t.rung is not None and t.finished and t.retune is None:
            runs.setdefault(t.rung, []).append(t)
    counts = markdown_table(
        ["rung", "horizon", "runs", "completed", "best final val loss"],
        [[str(k), num(next((t.fidelity for t in ts), None)), str(len(ts)), str(sum(t.completed for t in ts)),
          num(min((t.final_val_loss for t in ts if t.completed), default=None), 5)] for k, ts in sorted(runs.items())],
        [True] * 5,
    )
    pairs = rung_pairs(trials)
    if pairs:
        table = markdown_table(
            ["rungs", "horizons", "configs at both (n)", "Spearman rho", "p"],
            [[f"{p.low} -> {p.low + 1}", f"{num(p.fidelities[0])} -> {num(p.fidelities[1])}", str(p.n), num(p.rho, 3),
              num(p.p, 3)] for p in pairs],
            [False, False, True, True, True],
        )
    else:
        table = "No config has completed runs at two consecutive rungs yet."
    warnings = [_warning(p) for p in pairs if not p.trusted]
    return "\n\n".join([
        "## Horizon rungs\n\nEach rung's runs are complete runs at that fraction of the full length; a config "
        "goes on to the next rung when its run is among the best of its rung. Rank correlation (Spearman) of the "
        "final val losses of the configs that ran at both of two consecutive rungs:",
        counts, table, *warnings, *audit_section(trials), *retune_table(trials),
    ])


def audit_section(trials: list[Trial]) -> list[str]:
    """The lowest rung's ranking against full length, over the configs it promoted that got there
    and the configs it dropped that were audited there, with their rank correlation; a warning when
    an audited config beat every promoted one. Nothing when the sweep had no audit."""
    by_rung = completed_by_rung(trials)
    if 0 not in by_rung or not any(t.audit for runs in by_rung.values() for t in runs.values()):
        return []
    lowest = {c: t.final_val_loss for c, t in by_rung[0].items()}
    # a retune run is a config of its own, with no run at rung 0
    full = {c: t for c, t in by_rung[max(by_rung)].items() if c in lowest}
    rank = {c: i + 1 for i, c in enumerate(sorted(lowest, key=lambda c: (lowest[c], c)))}
    rows = [[f"#{c}", f"{rank[c]} of {len(lowest)}", num(lowest[c], 5), "audit" if t.audit else "promoted", t.label,
             num(t.final_val_loss, 5)] for c, t in sorted(full.items(), key=lambda ct: rank[ct[0]])]
    out = ["Audit: configs the lowest rung dropped, run at full length all the same, beside those it promoted "
           "there. Its ranking holds if the audited ones end behind:",
           markdown_table(["config", "rank at rung 0", "rung-0 loss", "reached full length by", "run", "final val loss"],
                          rows, [False, True, True, False, False, True])]
    if len(full) >= 3 and len({lowest[c] for c in full}) > 1 and len({t.final_val_loss for t in full.values()}) > 1:
        result = spearmanr([lowest[c] for c in full], [t.final_val_loss for t in full.values()])
        # no warning on a low rho alone: over a few spread-out audits it is mostly the noise among mediocre
        # configs, and it was low where the halving had kept the best config (bench/audit_replay.py)
        out.append(f"Spearman rho, rung 0 against full length: {float(result.statistic):.2f} over {len(full)} "
                   f"configs (p = {float(result.pvalue):.3g}).")
    promoted = [t.final_val_loss for t in full.values() if not t.audit]
    beat = [t for t in full.values() if promoted and t.audit and t.final_val_loss < min(promoted)]
    if beat:
        out.append(f"**Warning** (audit): {', '.join(f'config #{t.config_trial}' for t in beat)}, dropped at the "
                   f"lowest rung, ended below every config it promoted to full length: the short runs misranked "
                   f"{'it' if len(beat) == 1 else 'them'}; consider longer rungs, `detrend` or `retune` for the "
                   "parameters that differ.")
    return out


def retune_table(trials: list[Trial]) -> list[str]:
    """The retune's runs in order: the parameter moved, from which run, to what, and the loss;
    nothing when the sweep had no retune."""
    moved = sorted((t for t in trials if t.retune is not None and t.finished), key=lambda t: t.number or 0)
    if not moved:
        return []
    loss = {t.number: t.final_val_loss for t in trials if t.completed}
    rows = [[t.label, t.retune, f"#{t.promoted_from}", num(t.searched.get(t.retune), 4),
             num(loss.get(t.promoted_from), 5), num(t.final_val_loss, 5) if t.completed else t.status] for t in moved]
    return ["Full-length retune: each run moved one parameter of the best full-length run so far:",
            markdown_table(["run", "parameter", "from", "to", "loss before", "final val loss"], rows, [False] * 2 + [True] * 4)]


def _warning(p: RungPair) -> str:
    rungs = f"rungs {p.low} -> {p.low + 1}"
    if p.n < MIN_CONFIGS:
        why = f"only {p.n} config(s) ran at both (at least {MIN_CONFIGS} are needed to judge)"
    elif not math.isfinite(p.rho):
        why = "the losses do not vary, so there is no ranking to compare"
    else:
        why = f"Spearman rho = {p.rho:.2f} < {MIN_RHO}"
    return (f"**Warning** ({rungs}): {why}: the shorter runs' ranking is not shown to predict the longer runs', "
            "so promotions at this rung cannot be trusted.")
