"""Reading a speedrun script's console lines, in the formats of every era of the record's logs.

  step:0/1750 val_loss:10.8258 train_time:0ms step_avg:nanms          validation (all eras)
  step:1/1750 train_loss:10.8258 train_time:24389ms step_avg:nanms     a training step (2024)
  step:1/1393 train_time:17608ms step_avg:nanms                        a training step (2025 on)
  peak memory allocated: 29892 MiB reserved: 45456 MiB                  once, at the end

A torchrun `--tee` prefix (`[default0]:`) is allowed; `nan` parses as a float (a diverged loss,
or the step average before any timed step). A line without `train_time:` is not a step line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_STEP = re.compile(r"^(?:\[[^\]]*\]:\s*)?step:(\d+)/(\d+)\s+(.*)$")
_FIELD = re.compile(r"(\w+):(\S+)")
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
    fields = {key: _number(value) for key, value in _FIELD.findall(m[3])}
    if fields.get("train_time") is None:  # every era's step line has it; anything else only looks alike
        return None
    return StepLine(int(m[1]), int(m[2]), fields.get("val_loss"), fields.get("train_loss"),
                    fields.get("train_time"), fields.get("step_avg"))


def parse_peak_memory(line: str) -> int | None:
    """MiB from the `peak memory allocated: X MiB ...` line, or None for any other line."""
    m = _PEAK.search(line)
    return int(m[1]) if m else None


def _number(text: str) -> float | None:
    try:
        return float(text.removesuffix("ms"))
    except ValueError:
        return None
