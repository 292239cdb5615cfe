"""Markdown tables and number formats shared by the report's sections, and numbers made fit for JSON."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

DASH = "—"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None) -> str:
    """A pipe table padded into columns, so it reads the same printed in a terminal."""
    right = right or [False] * len(headers)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if r else "-" * (w + 2) for w, r in zip(widths, right)) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def num(x: float | None, digits: int = 4) -> str:
    """x to `digits` significant digits; a dash when missing or not finite."""
    return f"{x:.{digits}g}" if _ok(x) else DASH


def loss(x: float | None) -> str:
    return f"{x:.4f}" if _ok(x) else DASH


def seconds(x: float | None) -> str:
    return f"{x:.2f}" if _ok(x) else DASH


def signed(x: float | None) -> str:
    return f"{x:+.4f}" if _ok(x) else DASH


def interval(low: float, high: float, fmt=loss) -> str:
    return f"[{fmt(low)}, {fmt(high)}]" if _ok(low) and _ok(high) else DASH


def pvalue(p: float | None) -> str:
    if not _ok(p):
        return DASH
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _ok(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def finite_json(obj: Any) -> Any:
    """`obj` with every float that is not finite (a failed trial's objective) made None: JSON has no
    NaN or infinity."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_json(v) for v in obj]
    return obj
