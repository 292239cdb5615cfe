"""The GPT of modded-nanogpt's 2025-08-23 record (SparseAttnGate), every technique a switch.

Reads top to bottom: rotary, attention, MLP, block, the model. The forward pass takes one
packed sequence of documents (batch size 1, documents separated by BOS) and returns the
summed cross-entropy, as the record does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainer.attention import attend, dense_masks, flex_masks
from trainer.config import ModelConfig
from trainer.fp8 import fp8_linear


def norm(x: Tensor) -> Tensor:
    return F.rms_norm(x, (x.size(-1),))


def uniform_(w: Tensor, std: float) -> Tensor:
    """Uniform init with the given std (bound = sqrt(3) * std)."""
    bound = 3**0.5 * std
    with torch.no_grad():
        return w.uniform_(-bound, bound)


class Rotary(nn.Module):
    """Rotary embedding. 'half' rotates only half the dims (the rest get frequency zero)."""

    def __init__(self, head_dim: int, max_seq_len: int, mode: str, base: float):
        super().__init__()
        quarter = head_dim // 4
        if mode == "half":
            freq = (1 / base) ** torch.linspace(0, 1, quarter)
            freq = torch.cat([freq, freq.new_zeros(quarter)])
        else:
            freq = (1 / base) ** torch.linspace(0, 1, 2 * quarter)
        theta = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), freq)
        self.cos = nn.Buffer(theta.cos(), persistent=False)
        self.sin = nn.Buffer(theta.sin(), persistent=False)

    def forward(self, x_BTHD: Tensor) -> Tensor:
        T = x_BTHD.size(-3)
        cos, sin = self.cos[None, :T, None, :], self.sin[None, :T, None, :]
        x1, x2 = x_BTHD.float().chunk(2, dim=-1)
        y1 = x1 * cos + x2 * sin
        y2 = x1 * (-sin) + x2 * cos
        return torch.cat((y1, y2), 3).type_as(x_BTHD)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, max_seq_len: int):
        super().__init__()
        self.cfg = cfg
        dim, std = cfg.model_dim, cfg.init_scale * cfg.model_dim**-0.5
        # q, k, v and the output projection in one tensor: Muon orthogonalises the four as a batch
        self.qkvo_w = nn.Parameter(torch.empty(4, dim, dim))
        uniform_(self.qkvo_w[:3], std)
        if cfg.zero_init_outputs:
            self.qkvo_w.data[3].zero_()
        else:
            uniform_(self.qkvo_w[3], std)
        self.rotary = Rotary(cfg.head_dim, max_seq_len, cfg.rotary, cfg.rope_base) if cfg.rotary != "none" else None
        self.scale = cfg.attn_scale if cfg.attn_scale is not None else cfg.head_dim**-0.5
        # SparseAttnGate: each head's output scaled by a sigmoid of the first few residual features
        self.gate_w = nn.Parameter(torch.zeros(cfg.num_heads, cfg.attn_gate_features)) if cfg.attn_gate else None

    def forward(self, x: Tensor, ve: Tensor | None, sa_lambdas: Tensor, mask) -> Tensor:
        B, T, _ = x.shape
        H, D = self.cfg.num_heads, self.cfg.head_dim
        qkv = F.linear(x, self.qkvo_w[:3].flatten(end_dim=1).type_as(x))
        q, k, v = qkv.view(B, T, 3 * H, D).chunk(3, dim=-2)
        if self.cfg.qk_norm:
            q, k = norm(q), norm(k)
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        v = sa_lambdas[0] * v + sa_lambdas[1] * ve.view_as(v) if ve is not None else sa_lambdas[0] * v
        y = attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask, self.scale).transpose(1, 2)
        if self.gate_w is not None:
            gate = torch.sigmoid(F.linear(x[..., : self.gate_w.size(-1)], self.gate_w.type_as(x)))
            y = y * gate.view(B, T, H, 1)
        y = y.contiguous().view(B, T, H * D)
        return F.linear(y, self.qkvo_w[3].type_as(y))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        dim, hidden = cfg.model_dim, cfg.mlp_ratio * cfg.model_dim
        self.relu_squared = cfg.relu_squared
        # both stored as (dim, hidden) so Muon batches them as one shape
        self.c_fc = nn.Parameter(uniform_(torch.empty(dim, hidden), cfg.init_scale * dim**-0.5))
        self.c_proj = nn.Parameter(torch.zeros(dim, hidden))
        if not cfg.zero_init_outputs:
            uniform_(self.c_proj, cfg.init_scale * dim**-0.5)

    def forward(self, x: Tensor) -> Tensor:
        x = F.linear(x, self.c_fc.T.type_as(x))
        x = F.relu(x).square() if self.relu_squared else F.gelu(x)
        return F.linear(x, self.c_proj.type_as(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, max_seq_len: int, layer: int):
        super().__init__()
        self.x0_mix = cfg.x0_mix
        self.attn = Attention(cfg, max_seq_len) if layer not in cfg.skip_attention_layers else None
        self.mlp = MLP(cfg)

    def forward(self, x: Tensor, ve: Tensor | None, x0: Tensor, lambdas: Tensor, sa_lambdas: Tensor, mask) -> Tensor:
        if self.x0_mix:
            x = lambdas[0] * x + lambdas[1] * x0
        if self.attn is not None:
            x = x + self.attn(norm(x), ve, sa_lambdas, mask)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig, max_seq_len: int, flex: bool = False, fp8_head: bool = False):
        super().__init__()
        self.cfg = cfg
        self.flex = flex  # FlexAttention block masks (CUDA) instead of dense masks
        self.fp8_head = fp8_head
        L, vocab, dim = cfg.num_layers, cfg.padded_vocab, cfg.model_dim
        self.embed = nn.Embedding(vocab, dim)
        self.value_embeds = nn.ModuleList([nn.Embedding(vocab, dim) for _ in range(3 if cfg.value_embeds else 0)])
        self.blocks = nn.ModuleList([Block(cfg, max_seq_len, i) for i in range(L)])
        self.lm_head = nn.Parameter(torch.zeros(vocab, dim))
        if not cfg.zero_init_outputs:
            uniform_(self.lm_head, cfg.init_scale * dim**-0.5)
        # The record keeps all scalars in one vector: L skip weights (the first L/2 used),
        # L (x, x0) mixes, L (v, ve) mixes, padded to a multiple of 8 for its 8-way sharded Adam.
        pad = -5 * L % 8
        self.scalars = nn.Parameter(
            torch.cat([torch.ones(L), torch.tensor([1.0, 0.0]).repeat(L), torch.tensor([0.5, 0.5]).repeat(L), torch.ones(pad)])
        )

    def long_window_layers(self) -> list[bool]:
        cfg = self.cfg
        return [not cfg.long_short_windows or i in cfg.long_window_layers for i in range(cfg.num_layers)]

    def forward(self, input_seq: Tensor, target_seq: Tensor, window_blocks: Tensor) -> Tensor:
        """Summed cross-entropy of one packed sequence [T] under a sliding window of `window_blocks`."""
        L = self.cfg.num_layers
        ve = [emb(input_seq)[None] for emb in self.value_embeds]
        # value embeddings enter the first three and the last three layers, in the same order
        ve_per_layer = [ve[0], ve[1], ve[2]] + [None] * (L - 6) + [ve[0], ve[1], ve[2]] if ve else [None] * L

        build = flex_masks if self.flex else dense_masks
        long_mask, short_mask = build(input_seq, window_blocks, self.cfg.doc_masking)
        masks = [long_mask if is_long else short_mask for is_long in self.long_window_layers()]

        skip_weights = self.scalars[: L // 2]
        lambdas = self.scalars[L : 3 * L].view(-1, 2)
        sa_lambdas = self.scalars[3 * L : 5 * L].view(-1, 2)

        x = x0 = self.embed(input_seq)[None]
        if self.cfg.embed_norm:
            x = x0 = norm(x)
        skips = []
        for i, block in enumerate(self.blocks):
            if self.cfg.unet_skips and i >= L // 2:  # U-net: layer L/2 + j reads the output of layer L/2 - 1 - j
                x = x + skip_weights[i - L // 2] * skips.pop()
            x = block(x, ve_per_layer[i], x0, lambdas[i], sa_lambdas[i], masks[i])
            if self.cfg.unet_skips and i < L // 2:
                skips.append(x)

        x = norm(x)
        if self.fp8_head and self.training:
            logits = fp8_linear(x.flatten(0, -2), self.lm_head).view(*x.shape[:-1], -1).float()
        else:
            logits = F.linear(x, self.lm_head.type_as(x)).float()
        if self.cfg.logit_softcap > 0:
            logits = self.cfg.logit_softcap * torch.sigmoid(logits / self.cfg.softcap_temperature)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), target_seq, reduction="sum")

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by optimizer role: Muon's hidden matrices, and Adam's embeddings, scalars and head."""
        return {
            "hidden": [p for p in self.blocks.parameters() if p.ndim >= 2],
            "embed": [self.embed.weight, *(e.weight for e in self.value_embeds)],
            "scalar": [self.scalars],
            "head": [self.lm_head],
        }
