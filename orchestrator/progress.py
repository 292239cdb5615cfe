"""What the sweep prints: a line per finished trial (with best so far, elapsed, ETA) and a
closing table."""

from __future__ import annotations

import math
import sys
import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.outcome import COMPLETED, PRUNED
from orchestrator.records import TrialRecord, best_record, rank


def fmt_num(v: float) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 1000):
        return f"{int(v)}"
    return f"{v:.4g}" if abs(v) < 1e-3 or abs(v) >= 1e4 else f"{v:.4f}".rstrip("0").rstrip(".")


def fmt_duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def short_params(params: dict, limit: int = 4) -> str:
    """`muon_lr=0.0354 adam_lr=0.0139 …`: the last part of each key unless two would clash."""
    tails = [k.rsplit(".", 1)[-1] for k in params]
    names = [t if tails.count(t) == 1 else k for k, t in zip(params, tails)]
    items = [f"{n}={fmt_num(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v}" for n, v in zip(names, params.values())]
    return " ".join(items[:limit]) + (" …" if len(items) > limit else "")


class SweepConsole:
    def __init__(self, total: int, concurrency: int, metric: str, console: Console | None = None,
                 earlier: list[TrialRecord] | None = None):
        # piped output (CI, logs) gets a wide fixed width rather than rich's 80 columns
        self.console = console or Console(highlight=False, width=None if sys.stdout.isatty() else 160)
        self.total = total
        self.concurrency = max(concurrency, 1)
        self.metric = metric
        self.t0 = time.time()
        self.done: list[TrialRecord] = []
        self.earlier = list(earlier or [])  # trials an earlier driver of a resumed sweep finished

    def print(self, text: str) -> None:
        self.console.print(text)

    def trial_finished(self, rec: TrialRecord, running: int) -> None:
        self.done.append(rec)
        n = len(self.earlier) + len(self.done)
        self.total = max(self.total, n)  # an asynchronous horizon sweep may promote more than expected
        width = len(str(self.total))
        if rec.status == COMPLETED:
            what = f"{self.metric} {fmt_num(rec.objective)}"
        elif rec.status == PRUNED and rec.curve:
            what = f"by the scheduler after step {rec.curve[-1][0]} (val loss {fmt_num(rec.curve[-1][1])})"
        else:
            what = escape(rec.error.splitlines()[0][:100]) if rec.error else ""
        best = best_record(self.earlier + self.done)
        elapsed = time.time() - self.t0
        eta = ""
        if n < self.total:
            mean = sum(r.duration_s for r in self.done) / len(self.done)
            eta = f", ETA {fmt_duration(mean * math.ceil((self.total - n) / self.concurrency))}"
        best_txt = f"best {fmt_num(best.objective)} ({best.label})" if best else "best -"
        if rec.rung is not None and rec.rung.retune is not None:
            what += f"  retune of {rec.rung.retune} (full length, from #{rec.rung.promoted_from})"
        elif rec.rung is not None and rec.rung.audit:
            what += f"  audit at full length of config #{rec.rung.config_trial} (not promoted at rung 0)"
        elif rec.rung is not None:  # a horizon run: which of its config's runs this was
            what += f"  rung {rec.rung.index} ({rec.rung.fidelity:.3g} of the run, config #{rec.rung.config_trial})"
        self.console.print(
            f"[{n:>{width}}/{self.total}] {rec.label:>4} {rec.status:<9} {what}  "
            f"{escape(short_params(rec.params))}  {rec.duration_s:.0f}s "
            f"| {best_txt} | {running} running | {fmt_duration(elapsed)} elapsed{eta}"
        )

    def summary(self, records: list[TrialRecord]) -> Table:
        """Every trial, best first: the objective (completed trials only), the last val loss
        it reached and at which step, its training and wall-clock time, its parameters."""
        table = Table(title=f"trials, best {self.metric} first")
        cols = ["trial", "status", self.metric, "last val loss", "at step", "train s", "wall s", "params"]
        for col in cols:
            left = col in ("trial", "status", "params")
            table.add_column(col, justify="left" if left else "right", no_wrap=col != "params", overflow="fold")
        for r in ranked(records):
            last_val = r.curve[-1] if r.curve else None
            table.add_row(
                r.label, r.status, fmt_num(r.objective),
                fmt_num(last_val[1]) if last_val else "-", str(last_val[0]) if last_val else "-",
                f"{(r.last.get('train_time_ms') or 0) / 1000:.1f}", f"{r.duration_s:.0f}", escape(short_params(r.params, 8)),
            )
        self.console.print(table)
        return table


def ranked(records: list[TrialRecord]) -> list[TrialRecord]:
    """Completed trials by objective (ties: the wider validity margin), then the rest by trial number."""
    return sorted(records, key=rank)


def leaderboard_text(records: list[TrialRecord], metric: str) -> str:
    """A plain-text leaderboard for the parent run's artifact."""
    lines = [f"trial\tstatus\t{metric}\tlast_val_loss\tat_step\terror\toverrides"]
    for r in ranked(records):
        step, loss = r.curve[-1] if r.curve else ("-", None)
        error = r.error.splitlines()[0] if r.error else ""
        lines.append(f"{r.label}\t{r.status}\t{fmt_num(r.objective)}\t{fmt_num(loss)}\t{step}\t{error}\t{' '.join(r.overrides)}")
    return "\n".join(lines) + "\n"
