"""A run at a shorter horizon: the same schedules compressed into fewer steps, so it ends cooled down.

Speedrun schedules are fractions of training (stable LR then cooldown, window and batch stages by
progress), so a run stopped early has not cooled down and its loss says little about the config.
Scaling `schedule.num_iterations` compresses every progress-based breakpoint with it; the one
counted in steps, the Muon momentum warm-up, is scaled here too, so every breakpoint stays at the
same fraction of the run.

The validation interval is measurement, not schedule, and stays in steps: a run at 1/9 of the
length validates a ninth as often, so validation costs every rung the same share of its compute.
Compressed with the run, it would give a 30-step run as many validations as the 270-step one
(about as much compute as its training on the H100 proxy benchmark), where only the final one
decides its rung.
"""

from __future__ import annotations

from trainer.config import TrainConfig
from trainer.errors import InputError


def at_horizon(cfg: TrainConfig, fraction: float) -> TrainConfig:
    """`cfg` run for `fraction` of its steps, every schedule breakpoint at the same fraction of the run."""
    if not 0 < fraction <= 1:
        raise InputError(f"horizon {fraction}: expected a fraction of the run in (0, 1]")
    steps = cfg.schedule.num_iterations
    short = max(1, round(steps * fraction))
    scale = short / steps  # the rounded steps decide: breakpoints follow the run that really happens
    out = cfg.model_copy(deep=True)
    out.schedule.num_iterations = short
    momentum = out.schedule.muon_momentum
    momentum.steps = round(momentum.steps * scale)
    return out
