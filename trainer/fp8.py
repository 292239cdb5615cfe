"""FP8 matmul for the lm_head in training (CUDA, Hopper), as the record does.

Inputs are scaled into FP8 range with fixed scales (the record's: x by sqrt(dim)/448,
weights by 2^-9, gradients by 1/448), multiplied with `torch._scaled_mm`, and the FP8
copies are kept for the backward pass, whose gradient is cast to e5m2.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

W_SCALE = 2.0**-9
GRAD_SCALE = 1 / 448  # 448: the largest float8_e4m3fn value


@functools.cache
def _compiled(fn):
    """The op is opaque to the compiled model, so its casts are compiled on their own to
    fuse each scale-and-cast into one pass; lazily, so importing this costs nothing on a CPU."""
    return torch.compile(fn, dynamic=False)


def _mm_forward(x: Tensor, w: Tensor, x_s: float, w_s: float) -> tuple[Tensor, Tensor, Tensor]:
    x_f8 = x.div(x_s).to(torch.float8_e4m3fn)
    w_f8 = w.div(w_s).to(torch.float8_e4m3fn)
    out = torch._scaled_mm(
        x_f8,
        w_f8.T,
        out_dtype=torch.bfloat16,
        scale_a=x.new_tensor(x_s, dtype=torch.float32),
        scale_b=x.new_tensor(w_s, dtype=torch.float32),
        use_fast_accum=True,
    )
    return out, x_f8, w_f8


def _mm_backward(grad: Tensor, x_f8: Tensor, w_f8: Tensor, x_s: float, w_s: float, grad_s: float) -> tuple[Tensor, Tensor]:
    one = lambda s: grad.new_tensor(s, dtype=torch.float32)  # noqa: E731
    grad_f8 = grad.div(grad_s).to(torch.float8_e5m2)
    # _scaled_mm wants its second operand column-major: hence the .T.contiguous().T
    grad_x = torch._scaled_mm(
        grad_f8, w_f8.T.contiguous().T, out_dtype=torch.bfloat16, scale_a=one(grad_s), scale_b=one(w_s)
    )
    grad_w = torch._scaled_mm(
        x_f8.T.contiguous(), grad_f8.T.contiguous().T, out_dtype=torch.float32, scale_a=one(x_s), scale_b=one(grad_s)
    ).T
    return grad_x, grad_w


@torch.library.custom_op("speedrun::fp8_mm", mutates_args=())
def _fp8_mm(x: Tensor, w: Tensor, x_s: float, w_s: float, grad_s: float) -> tuple[Tensor, Tensor, Tensor]:
    return _compiled(_mm_forward)(x, w, x_s, w_s)


@_fp8_mm.register_fake
def _(x: Tensor, w: Tensor, x_s: float, w_s: float, grad_s: float) -> tuple[Tensor, Tensor, Tensor]:
    return x.new_empty(x.size(0), w.size(0), dtype=torch.bfloat16), x.to(torch.float8_e4m3fn), w.to(torch.float8_e4m3fn)


@torch.library.custom_op("speedrun::fp8_mm_backward", mutates_args=())
def _fp8_mm_backward(
    grad: Tensor, x_f8: Tensor, w_f8: Tensor, x_s: float, w_s: float, grad_s: float
) -> tuple[Tensor, Tensor]:
    return _compiled(_mm_backward)(grad, x_f8, w_f8, x_s, w_s, grad_s)


@_fp8_mm_backward.register_fake
def _(grad: Tensor, x_f8: Tensor, w_f8: Tensor, *_) -> tuple[Tensor, Tensor]:
    # grad_w comes out of _scaled_mm transposed (column-major); the fake must say so
    return grad.new_empty(x_f8.shape, dtype=torch.bfloat16), w_f8.new_empty(w_f8.shape[::-1], dtype=torch.float32).T


def _backward(ctx, grad_out: Tensor, *_):
    x_f8, w_f8 = ctx.saved_tensors
    grad_x, grad_w = torch.ops.speedrun.fp8_mm_backward(grad_out.contiguous(), x_f8, w_f8, *ctx.scales)
    return grad_x, grad_w, None, None, None


def _setup_context(ctx, inputs, output):
    *_, x_s, w_s, grad_s = inputs
    _, x_f8, w_f8 = output
    ctx.save_for_backward(x_f8, w_f8)
    ctx.scales = x_s, w_s, grad_s
    ctx.set_materialize_grads(False)


_fp8_mm.register_autograd(_backward, setup_context=_setup_context)


def fp8_linear(x: Tensor, w: Tensor) -> Tensor:
    """x [N, dim] @ w[vocab, dim].T in FP8 with the record's fixed scales; returns bf16."""
    x_s = x.size(-1) ** 0.5 / 448
    return torch.ops.speedrun.fp8_mm(x.contiguous(), w.contiguous(), x_s, W_SCALE, GRAD_SCALE)[0]
