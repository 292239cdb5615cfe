"""Schedules: every value that changes over training, as a pure function of the step.

Progress is `step / num_iterations`. Stage lists hold while progress < `until`; the last
stage (until 1.0) also covers the final validation step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainer.config import ATTN_BLOCK, LinearWindow, ModelConfig, ScheduleConfig, TokensStage


def stage_value(stages: list[TokensStage], progress: float) -> int:
    """The `tokens` of the first stage whose `until` lies beyond `progress`."""
    for stage in stages:
        if progress < stage.until:
            return stage.tokens
    return stages[-1].tokens


@dataclass(frozen=True)
class Schedules:
    """The schedule section of a config, evaluated at a step."""

    cfg: ScheduleConfig
    model: ModelConfig

    def progress(self, step: int) -> float:
        return step / self.cfg.num_iterations

    def lr_multiplier(self, step: int) -> float:
        """Warmup (optional), stable at 1, then linear cooldown to `lr.final`."""
        x, lr = self.progress(step), self.cfg.lr
        if x < lr.warmup_frac:
            return (x + 1 / self.cfg.num_iterations) / lr.warmup_frac
        if x < 1 - lr.cooldown_frac:
            return 1.0
        w = (1 - x) / lr.cooldown_frac
        return w * 1.0 + (1 - w) * lr.final

    def window_blocks(self, step: int) -> int:
        """Sliding-window size of the long-window layers, in 128-token blocks (at least one)."""
        window = self.cfg.window
        if isinstance(window, LinearWindow):
            tokens = window.start + (window.end - window.start) * self.progress(step)
        else:
            tokens = stage_value(window.stages, self.progress(step))
        return max(1, math.ceil(tokens / ATTN_BLOCK))

    def batch_tokens(self, step: int) -> int:
        """Tokens per optimizer step, summed over all ranks."""
        return stage_value(self.cfg.batch, self.progress(step))

    def seq_len(self, step: int) -> int:
        """Tokens per sequence, i.e. per micro-batch."""
        return stage_value(self.cfg.seq_len, self.progress(step))

    def muon_momentum(self, step: int) -> float:
        m = self.cfg.muon_momentum
        frac = min(step / m.steps, 1.0) if m.steps else 1.0
        return (1 - frac) * m.start + frac * m.end

    def batch_shapes(self) -> list[tuple[int, int, int]]:
        """(first step, batch tokens, seq len) for each distinct shape over the training steps.
        A shape changes only where a stage of either list ends, so only those steps are looked at:
        start-up costs the same for any num_iterations."""
        n = self.cfg.num_iterations
        starts = {0} | {self._first_step_at(stage.until) for stage in [*self.cfg.batch, *self.cfg.seq_len]}
        shapes: list[tuple[int, int, int]] = []
        for step in sorted(s for s in starts if s < n):
            shape = (self.batch_tokens(step), self.seq_len(step))
            if not shapes or shapes[-1][1:] != shape:
                shapes.append((step, *shape))
        return shapes

    def _first_step_at(self, fraction: float) -> int:
        """The first step whose progress is at least `fraction` (where a stage ending there ends)."""
        step = math.ceil(fraction * self.cfg.num_iterations)
        while step > 0 and self.progress(step - 1) >= fraction:  # float rounding either way
            step -= 1
        while self.progress(step) < fraction:
            step += 1
        return step
