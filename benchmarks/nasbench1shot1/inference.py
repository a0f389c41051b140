"""An inference-only form of the one-shot model for fixed mixing weights (eval mode).

Validation runs many batches through the same weights and the same mixing, so everything that
does not depend on the images is done once, when the form is built:

* every BatchNorm (running statistics, eval mode) is folded into the convolution before it:
  kernel * gamma / sqrt(var + eps), bias beta - mean * gamma / sqrt(var + eps);
* the mixing weights become the coefficient rows of each cell's weighted sums (`coefficients`).

A cell's channel groups live in one preallocated buffer, group-major: (5n, B, C, H, W), or
(5n, B, H, W, C) in the channels-last layout, in the order [node projections (n) | output
projections (n) | node 1's maxpool, conv3x3, conv1x1 | node 2's ... ]. Every group is a
contiguous tensor in the layout of the batch, so each op writes its output straight into its
group (`out=`: CUDA's max-pool writes through the output's data pointer and needs exactly that),
and every weighted sum is one matrix product of coefficient rows with the groups written so far
(the buffer's leading rows, so nothing unwritten is read). A node costs its input's product
(none where the input is the node's projection alone), a max-pool (on CUDA channels-last the
Triton kernel of `triton_pool.max_pool_into` where `kernels.use_triton` allows it: no int64
indices written), a convolution and a ReLU;
a cell adds its preprocessing convolution and ReLU, the output's product and one copy into the
next cell's layout: 179 dispatched operators per batch for space 1's paper model instead of the
module's 276. Equal to `OneShotModel` in eval mode in float64 to 1e-10, in both layouts (tested
on the CPU; `tests/test_inference.py` also checks that every `out=` target is contiguous in its
input's layout, the precondition of the CUDA kernels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.nasbench1shot1 import kernels
from benchmarks.nasbench1shot1.groups import GroupLayout, combine_groups, is_channels_last
from benchmarks.nasbench1shot1.model import Mixing, OneShotModel


def fold_batch_norm(
    kernel: Tensor, bn: nn.modules.batchnorm._BatchNorm, kernel_format: torch.memory_format = torch.contiguous_format
) -> tuple[Tensor, Tensor]:
    """(kernel * s, beta - mean * s) with s = gamma / sqrt(running_var + eps) per output channel;
    kernel (C_out, C_in, k, k) -> the same shape, in `kernel_format` (that of the activations, so
    that cuDNN need not convert it at every call), bias (C_out,)."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    folded = kernel * scale.view(-1, 1, 1, 1).to(kernel.dtype)
    return folded.contiguous(memory_format=kernel_format), shift.to(kernel.dtype)


def _foldable(model: OneShotModel, mixing: Mixing) -> bool:
    """Eval mode, one dense mixing for all cells, whole channels, every BatchNorm with running
    statistics."""
    batch_norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return (
        not model.training
        and isinstance(mixing, Mixing)
        and mixing.op_choice is None
        and model.partial_channels == 1
        and all(m.track_running_stats and m.running_mean is not None for m in batch_norms)
    )


class _FoldedCell:
    """One cell's folded kernels and biases, and the coefficient rows of its weighted sums in the
    buffer's group order."""

    def __init__(self, cell, rows: list[Tensor | None], output: Tensor, kernel_format: torch.memory_format):
        n = cell.num_nodes
        self.num_nodes, self.channels = n, cell.channels
        self.pre = fold_batch_norm(cell.preprocess[0].weight, cell.preprocess[1], kernel_format)
        self.nodes = [
            fold_batch_norm(k, bn, kernel_format) for k, bn in zip(cell.nodes.fused_kernels(), cell.nodes.bns)
        ]
        # the model's group order is [projections n | node ops 3n | output projections n]
        order = [*range(n), *range(4 * n, 5 * n), *range(n, 4 * n)]
        self.rows = [None if r is None else torch.cat([r[:, :n], r.new_zeros(1, n), r[:, n:]], dim=1) for r in rows]
        # node i's row covers exactly the groups written before it (nothing unwritten is read)
        assert all(r is None or r.shape[1] == 2 * n + 3 * i for i, r in enumerate(self.rows))
        self.output = output[:, order].contiguous()

    def __call__(self, s0: Tensor, channels_last: bool) -> Tensor:
        """s0 (B, c_in, H, W) -> (B, n * C, H, W), in the layout of `channels_last`."""
        n, channels = self.num_nodes, self.channels
        batch, _, height, width = s0.shape
        layout = GroupLayout(batch, channels, height, width, channels_last)
        buffer = torch.empty(5 * n, *layout.group_shape, dtype=s0.dtype, device=s0.device)
        triton_pool = channels_last and kernels.use_triton(buffer)
        if triton_pool:
            from benchmarks.nasbench1shot1.triton_pool import max_pool_into
        else:
            indices = layout.as_images(torch.empty(layout.group_shape, dtype=torch.long, device=s0.device))
        torch.clamp_min(layout.as_groups(F.conv2d(s0, *self.pre), 2 * n), 0, out=buffer[: 2 * n])
        for i, (kernel, bias) in enumerate(self.nodes):
            written = 2 * n + 3 * i
            rows = self.rows[i]
            x = layout.as_images(buffer[i] if rows is None else combine_groups(rows, buffer)[0])
            pooled = layout.as_images(buffer[written])
            if triton_pool:
                max_pool_into(x, pooled)
            else:
                torch.ops.aten.max_pool2d_with_indices.out(
                    x, [3, 3], [1, 1], [1, 1], [1, 1], False, out=pooled, indices=indices
                )
            convolutions = layout.as_groups(F.conv2d(x, kernel, bias, padding=1), 2)
            torch.clamp_min(convolutions, 0, out=buffer[written + 1 : written + 3])
        return layout.concatenated(combine_groups(self.output, buffer))


class FoldedNetwork:
    """`model(images, mixing)` in eval mode, with BatchNorm folded and the mixing fixed.

    Built under torch.no_grad() from the model's current weights and running statistics (a later
    change of either needs a new one); call it under torch.no_grad(): images (B, 3, 32, 32) ->
    logits (B, num_classes). Only for a model in eval mode and dense mixing over whole channels
    (`supports`).
    """

    @staticmethod
    def supports(model: OneShotModel, mixing: Mixing) -> bool:
        return _foldable(model, mixing)

    @torch.no_grad()
    def __init__(self, model: OneShotModel, mixing: Mixing):
        if not _foldable(model, mixing):
            raise ValueError(
                "FoldedNetwork needs a model in eval mode, dense mixing over whole channels and BatchNorm running "
                "statistics"
            )
        kernel = model.cells[0].nodes.conv3x3
        self.channels_last = is_channels_last(kernel)
        self.reductions = model.reductions
        self.downsample = model.downsample
        kernels = torch.channels_last if self.channels_last else torch.contiguous_format
        self.stem = fold_batch_norm(model.stem[0].weight, model.stem[1], kernels)
        coefficients = model.layout.cell_coefficients(mixing.ops, mixing.inputs, mixing.output, len(model.cells))
        self.cells = [
            _FoldedCell(cell, list(c.nodes), c.output, kernels)
            for cell, c in zip(model.cells, coefficients, strict=True)
        ]
        self.post = fold_batch_norm(model.postprocess[1].weight, model.postprocess[2], kernels)
        self.classifier = (model.classifier.weight.detach().clone(), model.classifier.bias.detach().clone())

    def __call__(self, images: Tensor) -> Tensor:
        s = F.conv2d(images, *self.stem, padding=1).relu_()
        for i, cell in enumerate(self.cells):
            if i in self.reductions:
                s = self.downsample(s)
            s = cell(s, self.channels_last)
        s = F.conv2d(s.relu(), *self.post)
        return F.linear(s.mean(dim=(2, 3)), *self.classifier)
