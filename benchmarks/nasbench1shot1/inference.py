"""An inference-only form of the one-shot model for fixed mixing weights (eval mode).

Validation runs many batches through the same weights and the same mixing, so everything that
does not depend on the images is done once, when the form is built:

* every BatchNorm (running statistics, eval mode) is folded into the convolution before it:
  kernel * gamma / sqrt(var + eps), bias beta - mean * gamma / sqrt(var + eps);
* the mixing weights become the coefficient rows of each cell's weighted sums (`coefficients`).

A cell's channel groups live in one preallocated buffer that each op writes into (`out=`), in
the order [node projections (n) | output projections (n) | node 1's maxpool, conv3x3, conv1x1 |
node 2's ... ] (5n groups of C channels), so that a node costs a convolution, a ReLU written into
the buffer, a max-pool written into the buffer and (unless its input is its projection alone) one
weighted sum for its input: 170 dispatched operators per batch for space 1's paper model instead
of the module's 276 (179 in the channels-last layout, whose buffers start zeroed). Equal to
`OneShotModel` in eval mode (tested in float64 to 1e-10).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.nasbench1shot1.model import Mixing, OneShotModel
from benchmarks.nasbench1shot1.ops import group_mixing_kernel


def fold_batch_norm(kernel: Tensor, bn: nn.modules.batchnorm._BatchNorm) -> tuple[Tensor, Tensor]:
    """(kernel * s, beta - mean * s) with s = gamma / sqrt(running_var + eps) per output channel;
    kernel (C_out, C_in, k, k) -> the same shape, bias (C_out,)."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return kernel * scale.view(-1, 1, 1, 1).to(kernel.dtype), shift.to(kernel.dtype)


def _foldable(model: OneShotModel, mixing: Mixing) -> bool:
    """Dense mixing, whole channels, every BatchNorm with running statistics."""
    batch_norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return (
        mixing.op_choice is None
        and model.partial_channels == 1
        and all(m.track_running_stats and m.running_mean is not None for m in batch_norms)
    )


class _FoldedCell:
    """One cell's folded kernels and biases, and its weighted sums in the buffer's group order:
    NCHW, coefficient rows over the groups written so far (a batched product, as
    `combine_groups`); channels-last, 1x1 kernels over the whole buffer (`group_mixing_kernel`;
    the buffer then starts as zeros, so that groups not yet written add nothing)."""

    def __init__(self, cell, rows: list[Tensor | None], output: Tensor, channels_last: bool):
        n, channels = cell.num_nodes, cell.channels
        self.num_nodes, self.channels, self.channels_last = n, channels, channels_last
        self.pre = fold_batch_norm(cell.preprocess[0].weight, cell.preprocess[1])
        self.nodes = [fold_batch_norm(k, bn) for k, bn in zip(cell.nodes.fused_kernels(), cell.nodes.bns)]
        # the model's group order is [projections n | node ops 3n | output projections n]
        order = [*range(n), *range(4 * n, 5 * n), *range(n, 4 * n)]
        rows = [None if r is None else torch.cat([r[:, :n], r.new_zeros(1, n), r[:, n:]], dim=1) for r in rows]
        output = output[:, order].contiguous()
        if channels_last:
            full = [None if r is None else torch.cat([r, r.new_zeros(1, 5 * n - r.shape[1])], dim=1) for r in rows]
            self.rows = [None if r is None else group_mixing_kernel(r, channels) for r in full]
            self.output = group_mixing_kernel(output, channels)
        else:
            self.rows, self.output = rows, output

    def __call__(self, s0: Tensor) -> Tensor:
        """s0 (B, c_in, H, W) -> (B, n * C, H, W)."""
        n, channels = self.num_nodes, self.channels
        batch, _, height, width = s0.shape
        shape = (batch, 5 * n * channels, height, width)
        if self.channels_last:
            buffer = torch.empty(shape, dtype=s0.dtype, device=s0.device, memory_format=torch.channels_last).zero_()
        else:
            buffer = torch.empty(shape, dtype=s0.dtype, device=s0.device)
        indices = torch.empty(batch, channels, height, width, dtype=torch.long, device=s0.device)
        torch.clamp_min(F.conv2d(s0, *self.pre), 0, out=buffer[:, : 2 * n * channels])
        for i, (kernel, bias) in enumerate(self.nodes):
            groups = 2 * n + 3 * i  # the groups written so far
            if self.rows[i] is None:
                x = buffer[:, i * channels : (i + 1) * channels]
            else:
                x = self._combine(self.rows[i], buffer, groups)
            start = groups * channels
            torch.ops.aten.max_pool2d_with_indices.out(
                x, [3, 3], [1, 1], [1, 1], [1, 1], False, out=buffer[:, start : start + channels], indices=indices
            )
            convolutions = buffer[:, start + channels : start + 3 * channels]
            torch.clamp_min(F.conv2d(x, kernel, bias, padding=1), 0, out=convolutions)
        return self._combine(self.output, buffer, 5 * n)

    def _combine(self, weights: Tensor, buffer: Tensor, groups: int) -> Tensor:
        """The weighted sums of `weights`' rows over the buffer's first `groups` groups:
        (B, k * C, H, W)."""
        if self.channels_last:
            return F.conv2d(buffer, weights)
        batch, total, height, width = buffer.shape
        matrices = buffer.view(batch, total // self.channels, -1)[:, :groups]  # (B, groups, C*H*W)
        out = torch.bmm(weights.expand(batch, weights.shape[0], groups), matrices)
        return out.view(batch, -1, height, width)


class FoldedNetwork:
    """`model(images, mixing)` in eval mode, with BatchNorm folded and the mixing fixed.

    Built under torch.no_grad() from the model's current weights and running statistics (a later
    change of either needs a new one); call it under torch.no_grad(): images (B, 3, 32, 32) ->
    logits (B, num_classes). Only for dense mixing over whole channels (`supports`).
    """

    @staticmethod
    def supports(model: OneShotModel, mixing: Mixing) -> bool:
        return _foldable(model, mixing)

    @torch.no_grad()
    def __init__(self, model: OneShotModel, mixing: Mixing):
        if not _foldable(model, mixing):
            raise ValueError("FoldedNetwork needs dense mixing over whole channels and BatchNorm running statistics")
        kernel = model.cells[0].nodes.conv3x3
        self.channels_last = kernel.is_contiguous(memory_format=torch.channels_last) and not kernel.is_contiguous()
        self.reductions = model.reductions
        self.downsample = model.downsample
        self.stem = fold_batch_norm(model.stem[0].weight, model.stem[1])
        coefficients = model.layout.cell_coefficients(mixing.ops, mixing.inputs, mixing.output, len(model.cells))
        self.cells = [
            _FoldedCell(cell, list(c.nodes), c.output, self.channels_last)
            for cell, c in zip(model.cells, coefficients, strict=True)
        ]
        self.post = fold_batch_norm(model.postprocess[1].weight, model.postprocess[2])
        self.classifier = (model.classifier.weight.detach().clone(), model.classifier.bias.detach().clone())

    def __call__(self, images: Tensor) -> Tensor:
        s = F.conv2d(images, *self.stem, padding=1).relu_()
        for i, cell in enumerate(self.cells):
            if i in self.reductions:
                s = self.downsample(s)
            s = cell(s)
        s = F.conv2d(s.relu(), *self.post)
        return F.linear(s.mean(dim=(2, 3)), *self.classifier)
