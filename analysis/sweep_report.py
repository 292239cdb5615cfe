"""The sweep report's sections: leaderboard, parameter importance, curves and scatter figures."""

from __future__ import annotations

import math
from pathlib import Path

from analysis import figures
from analysis.rungs import rung_section
from analysis.runs import Sweep, Trial, Value, longest_runs, val_curve
from analysis.study import Importance
from analysis.tables import DASH, loss, markdown_table, num, seconds

MAX_CURVES = 8  # more lines than this and the curves figure stops being readable

UNITS = {"final_val_loss": "nats/token", "time_to_target": "train ms", "steps_to_target": "steps"}


def objective_label(sweep: Sweep) -> str:
    return f"{sweep.objective} ({UNITS.get(sweep.objective, 'lower is better')})"


def objective_text(sweep: Sweep, x: float) -> str:
    """An objective value: a loss to 4 decimals, a time or step count to 6 significant digits."""
    return loss(x) if sweep.objective == "final_val_loss" else num(x, 6)


def ranked(trials: list[Trial]) -> list[Trial]:
    """Finished trials, best first: finite objectives ascending (ties: the wider validity margin),
    then the rest by trial number."""
    def key(t: Trial) -> tuple:
        finite = t.completed and math.isfinite(t.objective)
        number = t.number if t.number is not None else math.inf
        return (False, t.objective, -t.margin, number) if finite else (True, 0.0, 0.0, number)

    return sorted((t for t in trials if t.finished), key=key)


def best_trial(trials: list[Trial]) -> Trial | None:
    """The best completed trial (in a horizon sweep, of the highest rung reached: `longest_runs`)."""
    top = ranked(longest_runs(trials))[:1]
    return top[0] if top and top[0].completed and math.isfinite(top[0].objective) else None


def sweep_sections(sweep: Sweep, importance: Importance, out_dir: Path, top: int) -> list[str]:
    """The Markdown sections after the header, with their figures written into out_dir."""
    order = ranked(sweep.trials)
    best = best_trial(sweep.trials)
    names = _param_names(order, importance)
    horizon = [rung_section(sweep.trials)] if any(t.rung is not None for t in sweep.trials) else []
    return [
        _leaderboard(sweep, order[:top], len(order), names),
        *horizon,
        _importance(importance, out_dir),
        _curves(sweep, [t for t in order if t.completed and math.isfinite(t.objective)][: min(top, MAX_CURVES)],
                out_dir),
        _scatter(sweep, order, best, names, out_dir),
        _pareto(order, out_dir),
    ]


def _leaderboard(sweep: Sweep, shown: list[Trial], finished: int, names: list[str]) -> str:
    short = _short_names(names)
    horizon = any(t.rung is not None for t in sweep.trials)  # runs of different lengths: say which
    headers = ["trial", "status", *(["horizon"] if horizon else []), "objective", "final val loss", "train time (s)", *short]
    rows = [
        [t.label, t.status, *([num(t.fidelity)] if horizon else []), objective_text(sweep, t.objective),
         loss(t.final_val_loss), seconds(t.train_time_s), *(_value(t.searched.get(n)) for n in names)]
        for t in shown
    ]
    right = [False, False, *([True] if horizon else []), True, True, True, *([True] * len(names))]
    table = markdown_table(headers, rows, right) if rows else (
        "No trial has finished yet.")
    return f"## Leaderboard (top {len(shown)} of {finished} finished)\n\n{table}"


def _importance(importance: Importance, out_dir: Path) -> str:
    if not importance.values:
        return f"## Parameter importance\n\n{importance.note}."
    table = markdown_table(["parameter", "importance"], [[k, f"{v:.3f}"] for k, v in importance.values.items()],
                           [False, True])
    figures.importance_bars(importance.values, out_dir / "importance.png")
    return f"## Parameter importance\n\n{importance.note}.\n\n{table}\n\n![parameter importance](importance.png)"


def _curves(sweep: Sweep, shown: list[Trial], out_dir: Path) -> str:
    if not shown:
        return "## Loss curves of the top trials\n\nNo completed trial to draw."
    curves = {f"{t.label}: {objective_text(sweep, t.objective)}": val_curve(sweep.tracking_uri, t.run_id)
              for t in shown}
    title = f"Val loss of the top {len(shown)} trials" if len(shown) > 1 else "Val loss of the best trial"
    figures.val_curves(curves, out_dir / "curves.png", f"{title} (legend: objective)")
    return "## Loss curves of the top trials\n\n![val loss curves](curves.png)"


def _scatter(sweep: Sweep, order: list[Trial], best: Trial | None, names: list[str], out_dir: Path) -> str:
    done = [t for t in order if t.completed and math.isfinite(t.objective)]
    points = {
        n: [(t.searched[n], t.objective, t is best) for t in done if n in t.searched] for n in names
    }
    points = {n: p for n, p in points.items() if p}
    if not points:
        return "## Objective against each searched parameter\n\nNo completed trial with searched values to draw."
    figures.objective_vs_params(points, objective_label(sweep), out_dir / "objective_vs_params.png")
    return "## Objective against each searched parameter\n\n![objective vs parameters](objective_vs_params.png)"


def _pareto(order: list[Trial], out_dir: Path) -> str:
    done = [t for t in order if t.completed and math.isfinite(t.train_time_s)]
    if not done:
        return "## Final val loss vs train time\n\nNo completed trial with a train time to draw."
    times, losses = [t.train_time_s for t in done], [t.final_val_loss for t in done]
    front = figures.pareto_front(times, losses)
    figures.loss_vs_time(times, losses, [t.label for t in done], front, out_dir / "loss_vs_time.png")
    listed = ", ".join(f"{done[i].label} ({seconds(times[i])} s, {loss(losses[i])})" for i in front)
    return ("## Final val loss vs train time\n\n![final val loss vs train time](loss_vs_time.png)\n\n"
            f"Pareto front (no other trial is both faster and lower): {listed}.")


def _param_names(trials: list[Trial], importance: Importance) -> list[str]:
    """Searched parameter names, the most important first, then the rest in name order."""
    names = sorted({n for t in trials for n in t.searched})
    return sorted(names, key=lambda n: (n not in importance.values, -importance.values.get(n, 0.0)))


def _short_names(names: list[str]) -> list[str]:
    """The last dotted part of each name where that stays unambiguous (table headers stay narrow)."""
    last = [n.rsplit(".", 1)[-1] for n in names]
    return [s if last.count(s) == 1 else n for n, s in zip(names, last)]


def _value(v: Value | None) -> str:
    if v is None:
        return DASH
    if isinstance(v, float):
        return num(v)
    return str(v)
