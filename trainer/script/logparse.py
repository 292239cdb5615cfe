"""Reading a speedrun script's console lines, in the formats of every era and track of the record's logs.

  step:0/1750 val_loss:10.8258 train_time:0ms step_avg:nanms          validation (all eras)
  step:1/1750 train_loss:10.8258 train_time:24389ms step_avg:nanms     a training step (2024)
  step:1/1393 train_time:17608ms step_avg:nanms                        a training step (2025 on)
  step:3250/3250 val_loss:3.27699 train_time:1481.958s step_avg:511.02ms   track 3: seconds
  peak memory allocated: 29892 MiB reserved: 45456 MiB                  once, at the end

Times come back in ms whatever the line's unit (a bare number is ms, as the oldest scripts meant).
Torchrun prefixes (`[default0]:`, `[rank0]:`) and fields a script adds (`val_ema_loss:`,
`ema_beta:`) are allowed; `nan` parses as a float (a diverged loss, or the step average before
any timed step). A line without `train_time:` is not a step line: other lines may say `step:N/M`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_STEP = re.compile(r"^(?:\[[^\]]*\]:\s*)*step:(\d+)/(\d+)\s+(.*)$")
_FIELD = re.compile(r"(\w+):(\S+)")
_TIME = re.compile(r"(.*?)(ms|s)?")
_PEAK = re.compile(r"peak memory allocated: (\d+) MiB")


@dataclass(frozen=True)
class StepLine:
    """One `step:N/M ...` line; a val line has `val_loss`, a train line may have `train_loss`."""

    step: int
    total: int
    val_loss: float | None = None
    train_loss: float | None = None
    train_time_ms: float | None = None
    step_avg_ms: float | None = None


def parse_step(line: str) -> StepLine | None:
    """The step line's numbers, or None for any other line."""
    m = _STEP.match(line.strip())
    if m is None:
        return None
    fields = dict(_FIELD.findall(m[3]))
    train_time = _ms(fields.get("train_time"))
    if train_time is None:
        return None
    return StepLine(int(m[1]), int(m[2]), _float(fields.get("val_loss")), _float(fields.get("train_loss")),
                    train_time, _ms(fields.get("step_avg")))


def parse_peak_memory(line: str) -> int | None:
    """MiB from the `peak memory allocated: X MiB ...` line, or None for any other line."""
    m = _PEAK.search(line)
    return int(m[1]) if m else None


def _ms(text: str | None) -> float | None:
    if text is None:
        return None
    number, unit = _TIME.fullmatch(text).groups()
    value = _float(number)
    return value * 1000 if value is not None and unit == "s" else value


def _float(text: str | None) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None
