"""The 3x3 max-pool (stride 1, padding 1) of a channels-last batch as Triton kernels, which
`ops.max_pool` runs on CUDA (`kernels.use_triton` decides) in place of PyTorch's max_pool3d of the
dense (B, 1, H, W, C) storage (3.2 ms of a 27-ms DARTS step on an H100, 33 us a forward call on
6-MB activations; docs/performance.md, round 8).

What changes against PyTorch's kernels, per element of a (B, H, W, C) activation:

* forward: the window's position of the maximum is kept as one byte (0 to 8, row by row), not an
  int64 index: 5 bytes written per float32 element instead of 12 (output and index);
* backward: each input element gathers the output gradients of the (at most 9) windows whose
  maximum it is, in a fixed order, where PyTorch zero-fills the input gradient and then adds each
  output's gradient into it with atomics. Deterministic, and no zero-fill pass;
* its derivative (a Hessian's double backward) gathers each window's gradient from its maximum.

The same maxima, windows' first maximum on ties and NaN propagation as PyTorch's max-pool.
Tested against max_pool2d in tests/test_triton_kernels.py (on the CPU in Triton's interpreter).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from benchmarks.nasbench1shot1.kernels import on_device

ELEMENTS_PER_PROGRAM = 1024


@triton.jit
def _neighbour(e, valid, height, width, channels, k: tl.constexpr):
    # element e's neighbour k in its 3x3 window (0 to 8, row by row) in a dense (B, H, W, C)
    # tensor: its index, and whether it lies inside the image
    pixel = e // channels
    w = pixel % width
    h = (pixel // width) % height
    dh, dw = k // 3 - 1, k % 3 - 1
    inside = valid & (h + dh >= 0) & (h + dh < height) & (w + dw >= 0) & (w + dw < width)
    return e + (dh * width + dw) * channels, inside


@triton.jit
def _pool_kernel(
    y_ptr, x_ptr, position_ptr, total, height, width, channels, ELEMENTS: tl.constexpr, POSITIONS: tl.constexpr
):
    # y[e] = max of the 3x3 window around element e of a dense (B, H, W, C) tensor; with
    # POSITIONS, position[e] = where in the window (0 to 8, row by row): the first maximum, or the
    # last NaN
    e = tl.program_id(0) * ELEMENTS + tl.arange(0, ELEMENTS)
    valid = e < total
    best = tl.full((ELEMENTS,), float("-inf"), dtype=y_ptr.dtype.element_ty)
    position = tl.zeros((ELEMENTS,), dtype=tl.int32)
    found = tl.zeros((ELEMENTS,), dtype=tl.int1)
    for k in tl.static_range(9):
        neighbour, inside = _neighbour(e, valid, height, width, channels, k)
        value = tl.load(x_ptr + neighbour, mask=inside, other=float("-inf"))
        take = inside & ((found == 0) | (value > best) | (value != value))
        best = tl.where(take, value, best)
        position = tl.where(take, k, position)
        found = found | inside
    tl.store(y_ptr + e, best, mask=valid)
    if POSITIONS:
        tl.store(position_ptr + e, position.to(tl.int8), mask=valid)


@triton.jit
def _gather_kernel(grad_ptr, out_ptr, position_ptr, total, height, width, channels, ELEMENTS: tl.constexpr):
    # grad[e] = sum of out[q] over the windows q around element e whose maximum e is
    e = tl.program_id(0) * ELEMENTS + tl.arange(0, ELEMENTS)
    valid = e < total
    total_grad = tl.zeros((ELEMENTS,), dtype=grad_ptr.dtype.element_ty)
    for k in tl.static_range(9):
        q, inside = _neighbour(e, valid, height, width, channels, k)  # window q sees e at 8 - k
        position = tl.load(position_ptr + q, mask=inside, other=-1).to(tl.int32)
        value = tl.load(out_ptr + q, mask=inside & (position == 8 - k), other=0.0)
        total_grad += value
    tl.store(grad_ptr + e, total_grad, mask=valid)


@triton.jit
def _select_kernel(out_ptr, source_ptr, position_ptr, total, height, width, channels, ELEMENTS: tl.constexpr):
    # out[q] = source[the maximum of window q]
    q = tl.program_id(0) * ELEMENTS + tl.arange(0, ELEMENTS)
    valid = q < total
    position = tl.load(position_ptr + q, mask=valid, other=4).to(tl.int32)
    dh, dw = position // 3 - 1, position % 3 - 1
    tl.store(out_ptr + q, tl.load(source_ptr + q + (dh * width + dw) * channels, mask=valid), mask=valid)


def _launch(kernel, out: Tensor, source: Tensor, positions: Tensor, **constants: bool) -> Tensor:
    """kernel(out, source, positions, ..., **constants) over the elements of out,
    `ELEMENTS_PER_PROGRAM` per program; out, source and positions (B, H, W, C), dense. Returns
    out."""
    _, height, width, channels = out.shape
    total = out.numel()
    with on_device(out):
        kernel[(triton.cdiv(total, ELEMENTS_PER_PROGRAM),)](
            out, source, positions, total, height, width, channels, ELEMENTS=ELEMENTS_PER_PROGRAM, **constants
        )
    return out


def _by_positions_plain(source: Tensor, positions: Tensor, kind: str) -> Tensor:
    """`_ByPositions` in PyTorch's differentiable operators, for a batch of gradients
    (`autograd.grad(..., is_grads_batched=True)`), which a kernel cannot read: "select" indexes
    each window's maximum, "gather" adds each window's entry at its maximum (index_add)."""
    width, channels = positions.shape[2:]
    window = positions.long()
    offsets = ((window // 3 - 1) * width + window % 3 - 1) * channels
    index = (torch.arange(positions.numel(), device=positions.device).view_as(positions) + offsets).view(-1)
    if kind == "select":
        return source.reshape(-1)[index].view_as(positions)
    return torch.zeros_like(source).reshape(-1).index_add(0, index, source.reshape(-1)).view_as(positions)


def _by_positions(source: Tensor, positions: Tensor, kind: str) -> Tensor:
    """`_ByPositions`, or its plain form for batched gradients."""
    if torch._C._functorch.is_legacy_batchedtensor(source):
        return _by_positions_plain(source, positions, kind)
    return _ByPositions.apply(source, positions, kind)


_LINEAR_KERNELS = {"gather": _gather_kernel, "select": _select_kernel}
_ADJOINT = {"gather": "select", "select": "gather"}


class _ByPositions(torch.autograd.Function):
    """ "gather": the max-pool's input gradient from its output gradient; "select": each window's
    entry of a tensor at its maximum. Linear maps of a (B, H, W, C) tensor given the positions,
    each the other's adjoint, so each one's derivative is the other."""

    @staticmethod
    def forward(ctx, source: Tensor, positions: Tensor, kind: str) -> Tensor:
        ctx.save_for_backward(positions)
        ctx.kind = kind
        out = torch.empty_like(positions, dtype=source.dtype)
        return _launch(_LINEAR_KERNELS[kind], out, source.contiguous(), positions)

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor, None, None]:
        (positions,) = ctx.saved_tensors
        return _by_positions(g, positions, _ADJOINT[ctx.kind]), None, None


class _MaxPool(torch.autograd.Function):
    """(B, H, W, C) dense -> its 3x3 max-pool, the same shape; backward the "gather" of
    `_ByPositions`."""

    @staticmethod
    def forward(ctx, stored: Tensor) -> Tensor:
        pooled = torch.empty_like(stored)
        positions = torch.empty_like(stored, dtype=torch.int8)
        _launch(_pool_kernel, pooled, stored, positions, POSITIONS=True)
        ctx.save_for_backward(positions)
        return pooled

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (positions,) = ctx.saved_tensors
        return _by_positions(grad, positions, "gather")


def max_pool_channels_last(x: Tensor) -> Tensor:
    """The 3x3 max-pool of a channels-last x (B, C, H, W), channels-last like it."""
    return _MaxPool.apply(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def max_pool_into(x: Tensor, out: Tensor) -> Tensor:
    """The 3x3 max-pool of a channels-last x (B, C, H, W) written into `out` (the same shape,
    channels-last), without the window positions a backward pass would need (inference)."""
    stored = out.permute(0, 2, 3, 1)
    return _launch(_pool_kernel, stored, x.permute(0, 2, 3, 1), stored, POSITIONS=False).permute(0, 3, 1, 2)
