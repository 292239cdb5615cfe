"""What a warm trainer process keeps from one run to the next: the compiled model.

torch.compile caches compiled code per module and input shapes, in memory. A process that runs
one trial after another (trainer/worker.py) keeps the last architecture's module and its compiled
forward, so a run of the same architecture compiles nothing and skips the warm-up steps on shapes
already warmed. Nothing else carries over: each run gets the initial weights its own seed gives,
exactly as in a fresh process, copied into the kept module, then new optimizers and data streams,
so a reused process gives the losses a fresh one gives (tests/test_worker.py).

Building those weights (a seeded init of every parameter on the CPU) is most of a warm run's
start-up. Sweeps mostly vary the optimizer and schedules under one seed, so the process also keeps
a copy of the last build's weights and the RNG state the build left: when the next run's init
(model config and seed) is the same, restoring both gives it the build's result, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass
class Snapshot:
    """The weights one build gave, and the RNG state right after it (CPU, and CUDA when built for it)."""

    key: str  # what decides the weights: model config, sequence length, device, seed
    weights: dict[str, Tensor]
    cpu_rng: Tensor
    cuda_rng: list[Tensor]

    @classmethod
    def take(cls, key: str, model: nn.Module, cuda: bool) -> Snapshot:
        """Copies of `model`'s weights and of the RNG state now."""
        weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return cls(key, weights, torch.get_rng_state(), torch.cuda.get_rng_state_all() if cuda else [])

    def restore(self, model: nn.Module) -> None:
        """`model` and the RNG as they were when the snapshot was taken."""
        model.load_state_dict(self.weights)
        torch.set_rng_state(self.cpu_rng)
        if self.cuda_rng:
            torch.cuda.set_rng_state_all(self.cuda_rng)

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
    keep_initial: bool = False  # keep `initial` (a worker's runs can use it; a one-run process's cannot)
    initial: Snapshot | None = None  # the last build's weights and RNG state
    restored: bool = False  # whether the current run's weights came from `initial` rather than a build

    def adopt(self, build: Callable[[], nn.Module], key: str, init_key: str, cuda: bool,
              compile: Callable[[nn.Module], Callable]) -> tuple[nn.Module, Callable]:
        """The module and forward for a run whose model `build()` makes: the kept ones when the
        architecture `key` matches, holding the build's weights (restored from the last build when
        `init_key` matches it, built otherwise); else the built module, compiled."""
        self.restored = key == self.key and self.initial is not None and self.initial.key == init_key
        if self.restored:
            self.initial.restore(self.model)
        else:
            fresh = build()
            self.initial = Snapshot.take(init_key, fresh, cuda) if self.keep_initial else None
            if key != self.key:
                self.key, self.model, self.forward, self.warmed = key, fresh, compile(fresh), set()
                return self.model, self.forward
            self.model.load_state_dict(fresh.state_dict())
        self.model.zero_grad(set_to_none=True)
        self.model.train()
        return self.model, self.forward

    def needs_warmup(self, shapes: list[Shape]) -> bool:
        """Whether some of `shapes` have not run through the kept forward yet."""
        return not set(shapes) <= self.warmed
