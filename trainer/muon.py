"""Muon: momentum orthogonalised by Newton-Schulz, for the hidden weight matrices.

https://kellerjordan.github.io/posts/muon/ . torch.optim.Muon takes only 2-D parameters
and does not shard, so this one is ours: it orthogonalises batched (3-D) weights such as
the merged QKVO tensor, and on several ranks each rank orthogonalises a share of the
matrices and all-gathers the results, as the record does. Gradients must already be
reduced across ranks when `step` is called.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

# Quintic iteration coefficients tuned for fast convergence of the singular values
# towards 1 (from the Muon post above).
NS_COEFFS = (3.4445, -4.7750, 2.0315)


def newton_schulz(G: Tensor, steps: int = 5) -> Tensor:
    """Approximately orthogonalise the last two dims of G, in bf16."""
    a, b, c = NS_COEFFS
    X = G.bfloat16()
    tall = G.size(-2) > G.size(-1)
    if tall:
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)  # spectral norm <= Frobenius norm <= 1
    for _ in range(steps):
        A = X @ X.mT
        B = b * A + c * A @ A
        X = a * X + B @ X
    return X.mT if tall else X


class Muon(torch.optim.Optimizer):
    """SGD-momentum (Nesterov) whose update is replaced by its nearest orthogonal matrix."""

    def __init__(self, params, lr: float = 0.05, momentum: float = 0.95, weight_decay: float = 0.0, ns_steps: int = 5):
        params = list(params)
        # one group per shape, so a rank's share is a run of same-shaped matrices
        shapes = sorted({tuple(p.shape) for p in params}, key=lambda s: (len(s), s))
        groups = [dict(params=[p for p in params if tuple(p.shape) == s]) for s in shapes]
        super().__init__(groups, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, ns_steps=ns_steps))
        self.orthogonalize = newton_schulz  # the CUDA path swaps in a compiled version

    @torch.no_grad()
    def step(self) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
        handles = []
        for group in self.param_groups:
            params: list[Tensor] = group["params"]
            mine = params[rank::world]  # rank r owns matrices r, r + world, ...
            if mine:
                self._update(mine, group)
            if world > 1:
                for base in range(0, len(params), world):
                    share = params[base : base + world]
                    padded = share + [torch.empty_like(share[0]) for _ in range(world - len(share))]
                    handles.append(dist.all_gather(padded, padded[rank], async_op=True))
        for h in handles:
            h.wait()

    def _update(self, params: list[Tensor], group: dict) -> None:
        """Momentum, then one batched orthogonalisation for all of this rank's same-shaped matrices."""
        m, lr = group["momentum"], group["lr"]
        updates = []
        for p in params:
            state = self.state[p]
            if not state:
                state["momentum_buffer"] = torch.zeros_like(p.grad)
            buf: Tensor = state["momentum_buffer"]
            buf.lerp_(p.grad, 1 - m)
            updates.append(p.grad.lerp(buf, m))  # Nesterov
        ortho = self.orthogonalize(torch.stack(updates), group["ns_steps"])
        scale = max(1.0, params[0].size(-2) / params[0].size(-1)) ** 0.5
        for p, u in zip(params, ortho):
            p.mul_(1 - lr * group["weight_decay"])
            p.add_(u.to(p.dtype), alpha=-lr * scale)
