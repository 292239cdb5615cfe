"""What a warm trainer process keeps from one run to the next: the compiled model.

torch.compile caches compiled code per module and input shapes, in memory. A process that runs
one trial after another (trainer/worker.py) keeps the last architecture's module and its compiled
forward, so a run of the same architecture compiles nothing and skips the warm-up steps on shapes
already warmed. Nothing else carries over: each run builds its model from its own seed exactly as
a fresh process would and copies those weights into the kept module, then builds new optimizers
and data streams, so a reused process gives the losses a fresh one gives (tests/test_worker.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

Shape = tuple[int, int]  # (batch tokens, sequence length) of a training step


@dataclass
class WarmModel:
    """The module of the last architecture run in this process, its compiled forward, and the
    batch shapes that forward has been warmed on. Empty in a fresh process."""

    key: str | None = None
    model: nn.Module | None = None
    forward: Callable | None = None
    warmed: set[Shape] = field(default_factory=set)
    runs: int = 0  # runs this process started before the current one

    def adopt(self, fresh: nn.Module, key: str, compile: Callable[[nn.Module], Callable]) -> tuple[nn.Module, Callable]:
        """The module and forward for a run whose freshly built model is `fresh`: the kept ones,
        holding `fresh`'s weights, when the architecture `key` matches; else `fresh`, compiled."""
        if key == self.key:
            self.model.load_state_dict(fresh.state_dict())
            self.model.zero_grad(set_to_none=True)
            self.model.train()
        else:
            self.key, self.model, self.forward, self.warmed = key, fresh, compile(fresh), set()
        return self.model, self.forward

    def needs_warmup(self, shapes: list[Shape]) -> bool:
        """Whether some of `shapes` have not run through the kept forward yet."""
        return not set(shapes) <= self.warmed
