"""The CUDA path: FlexAttention masks, the FP8 head and the compiled model (skipped without a GPU)."""

import pytest
import torch

from trainer.attention import attend, dense_masks, flex_masks
from trainer.config import load_config
from trainer.fp8 import fp8_linear
from trainer.model import GPT

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def packed_tokens(T, docs=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(0, 50000, (T + 1,), generator=g)
    seq[torch.randint(0, T, (docs,), generator=g)] = 50256
    seq[0] = 50256
    return seq[:-1].cuda().int(), seq[1:].cuda().long()


def test_compiled_flex_attention_matches_dense_masks_on_gpu():
    from torch.nn.attention.flex_attention import flex_attention

    compiled = torch.compile(flex_attention, dynamic=False)
    inputs, _ = packed_tokens(4096)
    q, k, v = (torch.randn(1, 6, 4096, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    for w in (1, 3, 14):
        window = torch.tensor(w, dtype=torch.int32, device="cuda")
        for dense, block in zip(dense_masks(inputs, window, True), flex_masks(inputs, window, True)):
            expected = attend(q.float(), k.float(), v.float(), dense, 0.12)
            got = compiled(q, k, v, block_mask=block, scale=0.12).float()
            assert ((got - expected).norm() / expected.norm()).item() < 1e-2


def test_fp8_head_matches_bf16_matmul_forward_and_backward():
    x = torch.randn(8192, 768, device="cuda", dtype=torch.bfloat16).mul(0.5).requires_grad_()
    w = torch.randn(50304, 768, device="cuda").mul(0.02).requires_grad_()
    out = fp8_linear(x, w)
    ref_x, ref_w = x.detach().float().requires_grad_(), w.detach().clone().requires_grad_()
    ref = ref_x @ ref_w.T
    g = torch.randn_like(ref)
    out.float().backward(g)
    ref.backward(g)
    rel = lambda a, b: ((a.float() - b).norm() / b.norm()).item()  # noqa: E731
    assert rel(out, ref) < 0.05 and rel(x.grad, ref_x.grad) < 0.1 and rel(w.grad, ref_w.grad) < 0.1


def test_compiled_model_loss_matches_the_eager_model():
    cfg = load_config("gpt2_124m").model
    torch.manual_seed(0)
    model = GPT(cfg.model_copy(update=dict(zero_init_outputs=False)), max_seq_len=8192, flex=True).cuda()
    for m in model.modules():
        if isinstance(m, torch.nn.Embedding):
            m.bfloat16()
    inputs, targets = packed_tokens(8192)
    window = torch.tensor(5, dtype=torch.int32, device="cuda")
    model.eval()
    with torch.no_grad():
        compiled = torch.compile(model, dynamic=False, fullgraph=True)(inputs, targets, window)
        model.flex = False
        eager = model(inputs, targets, window)
    assert compiled.item() == pytest.approx(eager.item(), rel=2e-3)
