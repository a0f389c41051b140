"""Building blocks of the one-shot model (SPEC §4), fused so that a step dispatches few kernels.

A choice node's two convolutions (conv3x3-bn-relu and conv1x1-bn-relu of the same input) run as
one 3x3 convolution with 2C outputs, the 1x1 kernel zero-padded into the centre of its half, and
one BatchNorm + ReLU over the 2C channels (BatchNorm and ReLU act per channel, so this equals the
two separate blocks). A cell's weighted sums over channel groups are in `groups`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.nasbench1shot1 import kernels
from benchmarks.nasbench1shot1.batchnorm import BatchNorm2d
from benchmarks.nasbench1shot1.conv import Conv2d, conv2d
from benchmarks.nasbench1shot1.groups import is_channels_last
from benchmarks.nasbench1shot1.reference import BN_EPS


class ConvBnRelu(nn.Sequential):
    """conv (no bias, 'same' padding) + BatchNorm(affine) + ReLU; (B, c_in, H, W) -> (B, c_out, H, W)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, bn_momentum: float):
        super().__init__(
            Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2),
            BatchNorm2d(c_out, eps=BN_EPS, momentum=bn_momentum),
            nn.ReLU(),
        )


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave the channels of `groups` equal groups: (B, C, H, W) -> (B, C, H, W)."""
    batch, channels, height, width = x.shape
    return x.view(batch, groups, channels // groups, height, width).transpose(1, 2).reshape(x.shape)


def weighted_sum(tensors: list[Tensor], weights: Tensor) -> Tensor:
    """sum_j weights[j] * tensors[j] for 0-d or broadcastable weights (one kernel per term)."""
    total = tensors[0] * weights[0]
    for tensor, weight in zip(tensors[1:], weights[1:]):
        total = torch.addcmul(total, tensor, weight)
    return total


def drop_path_mask(like: Tensor, probability: float) -> Tensor:
    """Per-sample factors (B, 1, 1, 1): Bernoulli(1 - p) / (1 - p), drawn from the default RNG of
    `like`'s device (as DARTS's drop_path)."""
    keep = 1.0 - probability
    mask = torch.empty(like.shape[0], 1, 1, 1, dtype=like.dtype, device=like.device).bernoulli_(keep)
    return mask.div_(keep)


class NodeOps(nn.Module):
    """The three candidate ops (`PRIMITIVES` order: maxpool3x3, conv3x3-bn-relu,
    conv1x1-bn-relu) of the n choice nodes of a cell, on `channels` channels each.

    Parameters: `conv3x3` (n * C, C, 3, 3) and `conv1x1` (n * C, C, 1, 1): node j's kernels
    (no bias) are rows j * C to (j + 1) * C (4-d, so that the model converts to channels-last);
    `bns[j]`: BatchNorm over node j's 2C conv channels (conv3x3's C, then conv1x1's C).
    """

    def __init__(self, nodes: int, channels: int, bn_momentum: float):
        super().__init__()
        self.channels = channels
        self.num_nodes = nodes
        self.conv3x3 = nn.Parameter(torch.empty(nodes * channels, channels, 3, 3))
        self.conv1x1 = nn.Parameter(torch.empty(nodes * channels, channels, 1, 1))
        for pair in zip(self.conv3x3.split(channels), self.conv1x1.split(channels)):
            for kernel in pair:  # as nn.Conv2d initialises each, in the order of separate modules
                nn.init.kaiming_uniform_(kernel, a=5**0.5)
        self.bns = nn.ModuleList(BatchNorm2d(2 * channels, eps=BN_EPS, momentum=bn_momentum) for _ in range(nodes))

    def kernels(self, kernel_size: int) -> Tensor:
        """The nodes' kernels of one size: (n, C, C, k, k)."""
        weight = self.conv3x3 if kernel_size == 3 else self.conv1x1
        return weight.view(self.num_nodes, self.channels, *weight.shape[1:])

    def fused_kernels(self) -> tuple[Tensor, ...]:
        """Per node, the (2C, C, 3, 3) kernel of both convolutions (the 1x1 kernel in the centre),
        in the parameters' memory format (channels-last ones: one copy for all nodes here, instead
        of cuDNN converting each node's kernel at every call)."""
        fused = torch.cat([self.kernels(3), F.pad(self.kernels(1), (1, 1, 1, 1))], dim=1)  # (n, 2C, C, 3, 3)
        weight = self.conv3x3
        if is_channels_last(weight):
            nodes, rows = fused.shape[:2]
            fused = fused.view(nodes * rows, *fused.shape[2:]).contiguous(memory_format=torch.channels_last)
            fused = fused.view(nodes, rows, *fused.shape[1:])
        return fused.unbind(0)

    def convolutions(self, x: Tensor, node: int, kernel: Tensor) -> Tensor:
        """Both conv-bn-relu ops of `node` on x (B, C, H, W) -> (B, 2C, H, W) [conv3x3 | conv1x1]."""
        return F.relu(self.bns[node](conv2d(x, kernel, padding=1)))

    def single(self, x: Tensor, node: int, op: int) -> Tensor:
        """Only op `op` of `node` on x (B, C, H, W) -> (B, C, H, W); a conv op uses its half of the
        node's BatchNorm (running statistics of the other half untouched)."""
        if op == 0:
            return max_pool(x)
        half = slice(0, self.channels) if op == 1 else slice(self.channels, 2 * self.channels)
        kernel, padding = (self.kernels(3)[node], 1) if op == 1 else (self.kernels(1)[node], 0)
        bn = self.bns[node]
        if bn.training and bn.num_batches_tracked is not None:
            bn.num_batches_tracked.add_(1)
        mean, var = (None, None) if bn.running_mean is None else (bn.running_mean[half], bn.running_var[half])
        batch_statistics = bn.training or mean is None
        out = conv2d(x, kernel, padding=padding)
        out = F.batch_norm(out, mean, var, bn.weight[half], bn.bias[half], batch_statistics, bn.momentum, bn.eps)
        return F.relu(out)


def max_pool(x: Tensor) -> Tensor:
    """maxpool3x3: MaxPool2d(3, stride 1, padding 1); (B, C, H, W) -> (B, C, H, W).

    A channels-last x runs, on CUDA, as the Triton kernels of `triton_pool` where
    `kernels.use_triton` allows them (deterministic, a byte per window's position). Otherwise, and
    unless deterministic algorithms are asked for, as a (3, 3, 1) max_pool3d of its dense
    (B, 1, H, W, C) storage: the same maxima and gradients (both take the first maximum of a window
    in the same scan order; on CUDA the 3-d backward adds with atomics, so a gradient with ties may
    differ by rounding), through the kernels for contiguous tensors instead of the NHWC ones, which
    are slow for few channels (0.6 ms of a 27.7-ms DARTS step on an H200)."""
    if torch._C._are_functorch_transforms_active():  # vmap cannot query the layout
        return F.max_pool2d(x, 3, stride=1, padding=1)
    if is_channels_last(x):
        if kernels.use_triton(x):
            from benchmarks.nasbench1shot1.triton_pool import max_pool_channels_last

            return max_pool_channels_last(x)
        if not torch.are_deterministic_algorithms_enabled():
            stored = x.permute(0, 2, 3, 1)[:, None]  # (B, 1, H, W, C), dense
            pooled = F.max_pool3d(stored, (3, 3, 1), stride=1, padding=(1, 1, 0))
            return pooled[:, 0].permute(0, 3, 1, 2)
    return F.max_pool2d(x, 3, stride=1, padding=1)
