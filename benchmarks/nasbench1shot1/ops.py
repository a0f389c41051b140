"""Building blocks of the one-shot model (SPEC §4)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from benchmarks.nasbench1shot1.reference import BN_EPS


class ConvBnRelu(nn.Sequential):
    """conv (no bias, 'same' padding) + BatchNorm(affine) + ReLU; (B, c_in, H, W) -> (B, c_out, H, W)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, bn_momentum: float):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=bn_momentum),
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


class MixedOp(nn.Module):
    """The three candidate ops of a choice node, in `PRIMITIVES` order, mixed by weights.

    With partial_channels = K > 1 (PC-DARTS) the ops see only the first C/K channels; the rest
    bypass them, and the result is channel-shuffled with K groups.
    """

    def __init__(self, channels: int, bn_momentum: float, partial_channels: int = 1):
        super().__init__()
        if channels % partial_channels:
            raise ValueError(f"{channels} channels cannot be split into {partial_channels} partial-channel groups")
        self.partial_channels = partial_channels
        op_channels = channels // partial_channels
        self.ops = nn.ModuleList(
            [
                nn.MaxPool2d(3, stride=1, padding=1),
                ConvBnRelu(op_channels, op_channels, 3, bn_momentum),
                ConvBnRelu(op_channels, op_channels, 1, bn_momentum),
            ]
        )

    def forward(self, x: Tensor, weights: Tensor, choice: int | None = None) -> Tensor:
        """x: (B, C, H, W); weights: (3,); choice: run only this op.

        With a choice, the output is weights[choice] * op(x) plus the other ops' weights as
        constants (zero for one-hot weights): as in the GDAS and NASP references, this passes
        the summed output gradient to the weights of the ops that did not run.
        """
        bypass = None
        if self.partial_channels > 1:
            split = x.shape[1] // self.partial_channels
            x, bypass = x[:, :split], x[:, split:]
        if choice is None:
            out = weighted_sum([op(x) for op in self.ops], weights)
        else:
            out = torch.addcmul(weights.sum() - weights[choice], self.ops[choice](x), weights[choice])
        if bypass is not None:
            out = channel_shuffle(torch.cat([out, bypass], dim=1), self.partial_channels)
        return out
