"""The report's PNG figures. Each function takes plain data and a path, draws one figure, saves it.

matplotlib's object API (Figure, no pyplot): no global state and no GUI backend, so it renders
with Agg wherever the report runs (a headless node, a test, a thread).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 110
COLORS = [f"C{i}" for i in range(10)]
MAX_LABELS = 20  # trial labels on a scatter beyond this many points hide the points

Curve = Sequence[tuple[int, float]]  # (step, val_loss)


def importance_bars(importances: dict[str, float], path: Path) -> Path:
    """Horizontal bars, the most important parameter on top."""
    names = list(importances)[::-1]
    # constrained layout makes room for the legend outside the axes, clear of bars and their labels
    fig = Figure(figsize=(8, 1.4 + 0.45 * len(names)), layout="constrained")
    ax = fig.add_subplot()
    ax.barh(names, [importances[n] for n in names], color="C0", label="fANOVA")
    for y, name in enumerate(names):
        ax.text(importances[name], y, f" {importances[name]:.2f}", va="center", fontsize=9)
    ax.set_xlim(0, max(importances.values()) * 1.15 or 1)
    ax.set_xlabel("importance (share of objective variance, sums to 1)")
    ax.set_title("Parameter importance for the objective")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return _save(fig, path)


def val_curves(curves: dict[str, Curve], path: Path, title: str) -> Path:
    """Val loss against trainer step, one line per labelled run (the best first); beside it, each
    run minus the best one, where the final differences of a few thousandths are visible."""
    lines = {label: tuple(zip(*curve)) for label, curve in curves.items() if curve}
    best = next(iter(curves))
    compared = best in lines and len(lines) > 1
    fig = Figure(figsize=(12, 4.6) if compared else (7.5, 4.6))
    ax = fig.add_subplot(1, 2 if compared else 1, 1)
    for (label, (steps, losses)), color in zip(lines.items(), _cycle()):
        ax.plot(steps, losses, marker="o", markersize=3, color=color, label=label)
    _zoom_on_tail(ax, list(curves.values()))
    ax.set_xlabel("trainer step")
    ax.set_ylabel("val loss (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if compared:
        _difference_panel(fig.add_subplot(1, 2, 2), lines, best, "val loss − the best trial's (nats/token)",
                          "Difference to the best trial (colours as on the left)")
    return _save(fig, path)


def objective_vs_params(points: dict[str, list[tuple[float | int | str, float, bool]]], ylabel: str,
                        path: Path) -> Path:
    """One scatter per parameter of (value, objective, is_best) points, the best trial circled.

    Numeric parameters spanning more than a decade get a log x-axis; other values are categories.
    """
    names = list(points)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(4.3 * cols, 3.5 * rows + 0.6), layout="constrained")
    for k, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, k + 1)
        xs = _positions(ax, [v for v, _, _ in points[name]])
        ys = [y for _, y, _ in points[name]]
        ax.scatter(xs, ys, color="C0", alpha=0.75, label="trial")
        best = [(x, y) for x, (_, y, is_best) in zip(xs, points[name]) if is_best]
        if best:
            ax.scatter(*zip(*best), s=130, facecolors="none", edgecolors="C3", linewidths=2, label="best trial")
        ax.set_xlabel(name)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize=8)
    fig.suptitle("Objective against each searched parameter (completed trials)")
    return _save(fig, path)


def loss_vs_time(times_s: list[float], losses: list[float], labels: list[str], front: list[int], path: Path) -> Path:
    """Final val loss against train time, the Pareto front (no trial both faster and lower) drawn as
    a step line; every point labelled while there are few, else the front only."""
    fig = Figure(figsize=(7.5, 4.8))
    ax = fig.add_subplot()
    ax.scatter(times_s, losses, color="C7", alpha=0.8, label="completed trial")
    fx, fy = [times_s[i] for i in front], [losses[i] for i in front]
    ax.step(fx, fy, where="post", color="C3", linewidth=1.5)
    ax.scatter(fx, fy, color="C3", s=50, zorder=3, label="Pareto front")
    for i in range(len(labels)) if len(labels) <= MAX_LABELS else front:
        ax.annotate(labels[i], (times_s[i], losses[i]), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.margins(0.08)  # room for the labels of the outermost points
    ax.set_xlabel("train time (s)")
    ax.set_ylabel("final val loss (nats/token)")
    ax.set_title("Final val loss vs train time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def arm_points(arms: list[str], losses: list[dict[str, float]], means: list[float],
               cis: list[tuple[float, float]], path: Path) -> Path:
    """Final val loss per arm: one point per seed, the mean with its 95% CI, the baseline mean dashed."""
    fig = Figure(figsize=(max(5.5, 1.3 * len(arms) + 2.5), 4.8))
    ax = fig.add_subplot()
    for x, (seeds, color) in enumerate(zip(losses, _cycle())):
        jitter = np.linspace(-0.12, 0.12, len(seeds)) if len(seeds) > 1 else [0.0]
        ax.scatter(x + np.asarray(jitter), list(seeds.values()), color=color, alpha=0.6, s=25,
                   label="one seed" if x == 0 else None)
    lows = [m - lo if math.isfinite(lo) else 0 for m, (lo, _) in zip(means, cis)]
    highs = [hi - m if math.isfinite(hi) else 0 for m, (_, hi) in zip(means, cis)]
    ax.errorbar(np.arange(len(arms)) + 0.3, means, yerr=[lows, highs], fmt="D", color="black", capsize=5,
                label="mean, 95% CI")
    if means and math.isfinite(means[0]):
        ax.axhline(means[0], color="gray", linestyle="--", linewidth=1, label=f"{arms[0]} mean")
    ax.set_xticks(range(len(arms)), arms, rotation=20 if len(arms) > 4 else 0)
    ax.set_xlabel("arm")
    ax.set_ylabel("final val loss (nats/token)")
    ax.set_title("Final val loss per arm")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def arm_curves(curves: dict[str, list[Curve]], path: Path, baseline: str) -> Path:
    """Val loss per arm, mean over seeds (thick) and each seed (thin); beside it, each arm's mean
    minus the baseline's, where differences of a few thousandths are visible."""
    means = {arm: _mean_curve(runs) for arm, runs in curves.items()}
    has_base = bool(means.get(baseline, ((), ()))[0])
    fig = Figure(figsize=(12, 4.6) if has_base else (7.5, 4.6))
    ax = fig.add_subplot(1, 2 if has_base else 1, 1)
    for (arm, runs), color in zip(curves.items(), _cycle()):
        for curve in filter(None, runs):
            ax.plot(*zip(*curve), color=color, linewidth=0.7, alpha=0.35)
        ax.plot(*means[arm], color=color, linewidth=2, label=f"{arm} (mean of {len(runs)})")
    _zoom_on_tail(ax, [c for runs in curves.values() for c in runs])
    ax.set_xlabel("trainer step")
    ax.set_ylabel("val loss (nats/token)")
    ax.set_title("Val loss per arm (thin: one seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if has_base:
        _difference_panel(fig.add_subplot(1, 2, 2), means, baseline, f"mean val loss − {baseline} mean (nats/token)",
                          f"Difference to {baseline} (below 0: better; colours as left)")
    return _save(fig, path)


def pareto_front(xs: list[float], ys: list[float]) -> list[int]:
    """Indices of the points no other point beats on both (lower is better), by increasing x."""
    front, best_y = [], math.inf
    for i in sorted(range(len(xs)), key=lambda i: (xs[i], ys[i])):
        if ys[i] < best_y:
            front.append(i)
            best_y = ys[i]
    return front


def _positions(ax, values: list[float | int | str]) -> list[float]:
    """x positions for a parameter's values: numbers as they are, anything else as categories."""
    if all(isinstance(v, int | float) for v in values):
        positive = [v for v in values if v > 0]
        if len(positive) == len(values) and max(positive) / min(positive) > 10:
            ax.set_xscale("log")
        else:  # a narrow linear range gets long tick labels: fewer of them, so they never overlap
            ax.xaxis.set_major_locator(MaxNLocator(4))
        return [float(v) for v in values]
    categories = sorted({str(v) for v in values})
    ax.set_xticks(range(len(categories)), categories, rotation=20 if len(categories) > 3 else 0, fontsize=8)
    return [float(categories.index(str(v))) for v in values]


def _difference_panel(ax, lines: dict[str, tuple[Sequence[int], Sequence[float]]], reference: str,
                      ylabel: str, title: str) -> None:
    """Each (steps, losses) line minus the reference line, at the steps both evaluated; colours
    as in the panel beside it, whose legend names them (a second legend would cover the lines)."""
    ref = dict(zip(*lines[reference]))
    for (label, (steps, losses)), color in zip(lines.items(), _cycle()):
        shared = [(s, v - ref[s]) for s, v in zip(steps, losses) if s in ref]
        if shared:
            ax.plot(*zip(*shared), color=color, linewidth=1.5, marker="o", markersize=3, label=label)
    ax.set_xlabel("trainer step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)


def _mean_curve(runs: list[Curve]) -> tuple[list[int], list[float]]:
    """The mean over runs at the steps every run evaluated."""
    by_step = [dict(c) for c in runs]
    steps = sorted(set.intersection(*(set(c) for c in by_step))) if by_step else []
    return steps, [float(np.mean([c[s] for c in by_step])) for s in steps]


def _zoom_on_tail(ax, curves: list[Curve]) -> None:
    """Clip the y-axis to the evaluations from 20% of the run on: the first ones (near ln(vocab))
    would squash the differences that matter into a flat line. Say so on the figure."""
    points = [p for c in curves for p in c]
    if not points:
        return
    last = max(s for s, _ in points)
    later = [v for s, v in points if s >= 0.2 * last]
    low, high = min(v for _, v in points), max(later)
    if high >= max(v for _, v in points) or high <= low:
        return
    ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
    ax.text(0.01, 0.01, "y-axis clipped to evaluations from 20% of the run on", transform=ax.transAxes,
            fontsize=7, color="gray")


def _cycle():
    while True:
        yield from COLORS


def _save(fig: Figure, path: Path) -> Path:
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path
