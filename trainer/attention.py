"""Document-causal sliding-window attention over 128-token blocks, as in the record.

Masks are built per batch from block-level document ids. For each query block the
record keeps the nearest key blocks: up to `window - 1` fully visible blocks and the
partially visible ones (the diagonal, document boundaries) within what is left of the
window. The same block choice feeds two interchangeable back ends:

- `dense`: a boolean token mask for `scaled_dot_product_attention` (CPU, tests, no compile);
- `flex`: a FlexAttention `BlockMask` (CUDA), where the window is a tensor so that a
  changing window does not recompile.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.attention.flex_attention import BlockMask, flex_attention

from trainer.config import ATTN_BLOCK

BOS_ID = 50256


def document_ids(input_seq: Tensor, doc_masking: bool) -> Tensor:
    """Document index of every token; a new document starts at each BOS."""
    if not doc_masking:
        return torch.zeros_like(input_seq, dtype=torch.int32)
    return (input_seq == BOS_ID).cumsum(0, dtype=torch.int32)


def _block_candidates(docs: Tensor) -> tuple[Tensor, Tensor]:
    """(partial, full) key blocks per query block: some or all of their tokens are visible."""
    n = docs.numel() // ATTN_BLOCK
    idx = torch.arange(n, device=docs.device)
    low = docs.view(n, ATTN_BLOCK)[:, 0]
    high = docs.view(n, ATTN_BLOCK)[:, -1]
    causal_any = idx[:, None] >= idx
    causal_all = idx[:, None] > idx
    doc_any = (low[:, None] <= high) & (high[:, None] >= low)
    doc_all = (low[:, None] == high) & (high[:, None] == low)
    any_visible = causal_any & doc_any
    all_visible = causal_all & doc_all
    return any_visible & ~all_visible, all_visible


def _limits(partial: Tensor, full: Tensor, window_blocks: Tensor) -> tuple[Tensor, Tensor]:
    """How many of the nearest partial and full blocks each query block keeps."""
    n_partial = partial.sum(-1, dtype=torch.int32)
    n_full = full.sum(-1, dtype=torch.int32)
    keep_partial = torch.minimum(n_partial, torch.clamp_min(window_blocks - n_full, 1))
    keep_full = torch.clamp_min(torch.minimum(n_full, window_blocks - 1), 0)
    return keep_partial, keep_full


def _nearest_first(blocks: Tensor) -> Tensor:
    """Key-block indices ordered nearest first (highest index), as FlexAttention reads them."""
    return blocks.int().argsort(dim=-1, stable=True).flip(-1).to(torch.int32)


def dense_masks(input_seq: Tensor, window_blocks: Tensor, doc_masking: bool) -> tuple[Tensor, Tensor]:
    """(long, short) boolean token masks [T, T]; the short window is half the long one."""
    docs = document_ids(input_seq, doc_masking)
    partial, full = _block_candidates(docs)
    causal = torch.ones(docs.numel(), docs.numel(), dtype=torch.bool, device=docs.device).tril()
    token_visible = causal & (docs[:, None] == docs[None, :])

    def for_window(w: Tensor) -> Tensor:
        keep_partial, keep_full = _limits(partial, full, w)
        # rank of each visible block among its row's visible blocks, nearest first
        rank_partial = partial.flip(-1).cumsum(-1).flip(-1) - 1
        rank_full = full.flip(-1).cumsum(-1).flip(-1) - 1
        blocks = (partial & (rank_partial < keep_partial[:, None])) | (full & (rank_full < keep_full[:, None]))
        return blocks.repeat_interleave(ATTN_BLOCK, 0).repeat_interleave(ATTN_BLOCK, 1) & token_visible

    return for_window(window_blocks), for_window(window_blocks // 2)


def flex_masks(input_seq: Tensor, window_blocks: Tensor, doc_masking: bool) -> tuple[BlockMask, BlockMask]:
    """(long, short) FlexAttention block masks, built from block-level counts without a dense token mask."""
    docs = document_ids(input_seq, doc_masking)
    partial, full = _block_candidates(docs)
    partial_idx, full_idx = _nearest_first(partial), _nearest_first(full)

    def document_causal(b, h, q_idx, kv_idx):
        return (q_idx >= kv_idx) & (docs[q_idx] == docs[kv_idx])

    def for_window(w: Tensor) -> BlockMask:
        keep_partial, keep_full = _limits(partial, full, w)
        return BlockMask.from_kv_blocks(
            keep_partial[None, None].contiguous(),
            partial_idx[None, None].contiguous(),
            keep_full[None, None].contiguous(),
            full_idx[None, None].contiguous(),
            BLOCK_SIZE=ATTN_BLOCK,
            mask_mod=document_causal,
        )

    return for_window(window_blocks), for_window(window_blocks // 2)


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | BlockMask, scale: float) -> Tensor:
    """Attention of q, k, v shaped [B, H, T, D] under a dense or block mask."""
    if isinstance(mask, BlockMask):
        return flex_attention(q, k, v, block_mask=mask, scale=scale)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
