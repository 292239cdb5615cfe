"""Document-causal sliding-window masks over 128-token blocks, dense and FlexAttention alike."""

import pytest
import torch

from trainer.attention import attend, dense_masks, flex_masks

T = 1024  # 8 blocks


def one_document():
    seq = torch.arange(T) % 1000
    seq[0] = 50256
    return seq


def block_view(mask):
    return mask.view(T // 128, 128, T // 128, 128).any(3).any(1)


def test_a_window_covering_the_sequence_is_plain_document_causal():
    seq = one_document()
    seq[300] = 50256
    long, _ = dense_masks(seq, torch.tensor(8), doc_masking=True)
    docs = (seq == 50256).cumsum(0)
    assert torch.equal(long, torch.ones(T, T, dtype=torch.bool).tril() & (docs[:, None] == docs))


def test_no_token_attends_across_documents():
    seq = one_document()
    seq[[200, 650]] = 50256
    docs = (seq == 50256).cumsum(0)
    long, short = dense_masks(seq, torch.tensor(8), doc_masking=True)
    assert not (long & (docs[:, None] != docs)).any() and not (short & (docs[:, None] != docs)).any()


def test_window_of_w_blocks_sees_the_w_nearest_blocks():
    long, short = dense_masks(one_document(), torch.tensor(3), doc_masking=True)
    blocks = torch.arange(8)
    expected = (blocks[:, None] >= blocks) & (blocks[:, None] - blocks < 3)
    assert torch.equal(block_view(long), expected)
    assert torch.equal(block_view(short), torch.eye(8, dtype=torch.bool))  # 3 // 2 = 1 block


def test_every_query_sees_at_least_itself():
    seq = one_document()
    seq[::37] = 50256
    for w in range(0, 9):
        long, short = dense_masks(seq, torch.tensor(w), doc_masking=True)
        assert long.diagonal().all() and short.diagonal().all()


def test_without_document_masking_attention_crosses_documents():
    seq = one_document()
    seq[500] = 50256
    long, _ = dense_masks(seq, torch.tensor(8), doc_masking=False)
    assert torch.equal(long, torch.ones(T, T, dtype=torch.bool).tril())


@pytest.mark.slow
def test_flex_block_masks_attend_exactly_like_the_dense_masks():
    from torch.nn.attention.flex_attention import flex_attention

    compiled = torch.compile(flex_attention)  # the eager fallback is a reference, not the kernel we run
    torch.manual_seed(0)
    seq = torch.randint(0, 1000, (T,))
    seq[torch.randint(0, T, (12,))] = 50256
    q, k, v = (torch.randn(1, 2, T, 32) for _ in range(3))
    for w in (1, 2, 3, 8):
        window = torch.tensor(w, dtype=torch.int32)
        for dense, block in zip(dense_masks(seq, window, True), flex_masks(seq, window, True)):
            expected = attend(q, k, v, dense, 0.12)
            got = compiled(q, k, v, block_mask=block, scale=0.12)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
