"""Convolutions whose double backward computes only what it is asked for, for the Hessian-vector
products of SPEC §6.

PyTorch's double backward of a convolution (`_convolution_double_backward`) computes the
weight's gradient whenever the input gradient is differentiated, whether or not the weight needs
one: a convolution of the transposed input with the transposed output gradient. The
architecture Hessian's products need no weight gradient, yet paid one such convolution per layer,
on CUDA with operands dense in neither layout (copied into NCHW first): 14 ms of a 56-ms product
on an H200 (docs/performance.md, round 4). Here, when the backward pass is itself differentiated
(create_graph), it is written with differentiable operations whose own backward passes compute
only the gradients asked for: the input gradient as a transposed convolution, the weight gradient
as `convolution_backward` asked for the weight alone. Otherwise the backward is PyTorch's, one
`convolution_backward`; the values are the same. Either way it computes only the gradients the
running backward pass will use (`wanted.wanted_gradients`: no weight gradients for the
architecture's). Under torch.func transforms (vmap, jvp)
`conv2d` is `F.conv2d`; `torch.autograd.forward_ad` (dual tensors) is not supported, as for the
other functions of this package with their own derivatives. Stride 1, no dilation, no groups,
no bias: the one-shot model's convolutions.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .wanted import wanted_gradients


def _convolution_backward(grad: Tensor, x: Tensor, weight: Tensor, padding: int, mask: list[bool]):
    return torch.ops.aten.convolution_backward(
        grad, x, weight, None, [1, 1], [padding, padding], [1, 1], False, [0, 0], 1, [*mask, False]
    )


class _Conv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, padding: int) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return F.conv2d(x, weight, padding=padding)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        x, weight = ctx.saved_tensors
        needs_x, needs_weight = wanted_gradients(ctx, 2)
        if not torch.is_grad_enabled():
            gx, g_weight, _ = _convolution_backward(grad, x, weight, ctx.padding, [needs_x, needs_weight])
            return gx, g_weight, None
        gx = F.conv_transpose2d(grad, weight, padding=ctx.padding) if needs_x else None
        g_weight = _convolution_backward(grad, x, weight, ctx.padding, [False, True])[1] if needs_weight else None
        return gx, g_weight, None


def conv2d(x: Tensor, weight: Tensor, padding: int) -> Tensor:
    """F.conv2d(x, weight, padding=padding), stride 1, without bias; x (B, C_in, H, W), weight
    (C_out, C_in, k, k) -> (B, C_out, H + 2 * padding - k + 1, ...)."""
    if torch._C._are_functorch_transforms_active():
        return F.conv2d(x, weight, padding=padding)
    return _Conv2d.apply(x, weight, padding)


class Conv2d(nn.Conv2d):
    """`nn.Conv2d` without bias, stride 1 and symmetric padding (same parameters and
    initialisation), computed by `conv2d`."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, padding: int = 0):
        super().__init__(c_in, c_out, kernel_size, padding=padding, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return conv2d(x, self.weight, self.padding[0])
