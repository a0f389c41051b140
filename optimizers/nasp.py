"""NASP (Yao et al., 2020) on the one-shot model: forward and backward on binarized op weights.

Op alphas start at `op_alpha_init` (0.5) + 1e-3 * N(0, 1). Both steps run on one-hot op weights
at the argmax of the op alphas, with a straight-through (identity) gradient to the continuous
alphas; only the chosen op runs. After each architecture step the op alphas are clipped to
[0, 1]. Input and output alphas stay continuous (softmax), as SPEC §5 describes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.nasbench1shot1 import Mixing, OneShotModel, SearchSpace
from optimizers.base import Batch
from optimizers.darts import DARTS, DARTSConfig
from optimizers.registry import register


def binarizer(alphas: Sequence[Tensor]) -> Callable[[Sequence[Tensor]], Mixing]:
    """Fix the op choice argmax(op alphas) at `alphas` and return alphas -> Mixing with it.

    The mixing has one-hot op weights that pass their gradient straight through to the op
    alphas (onehot + (a - a.detach()), exactly one-hot in value), `op_choice` set so only the
    chosen op runs, and softmax input/output weights. Costs one device-to-host transfer.
    """
    index = alphas[0].detach().argmax(dim=-1)
    op_choice = index.tolist()
    one_hot = F.one_hot(index, alphas[0].shape[-1]).to(alphas[0].dtype)

    def mixing(alphas: Sequence[Tensor]) -> Mixing:
        ops, *edges = alphas
        weights = [one_hot + (ops - ops.detach()), *(F.softmax(edge, dim=-1) for edge in edges)]
        return Mixing.from_weights(weights, op_choice)

    return mixing


@dataclass
class NASPConfig(DARTSConfig):
    op_alpha_init: float = 0.5


@register("nasp")
class NASP(DARTS):
    """DARTS whose op weights are binarized in both steps; op alphas are clipped to [0, 1]."""

    Config = NASPConfig

    def __init__(self, space: SearchSpace, model: OneShotModel, config: NASPConfig):
        super().__init__(space, model, config)
        with torch.no_grad():
            self.alphas[0].add_(config.op_alpha_init)

    @property
    def capturable(self) -> bool:
        """No: the op choice is read on the host every step."""
        return False

    def mixing(self, alphas: Sequence[Tensor]) -> Mixing:
        """Binarized op weights at the argmax of `alphas`, softmax edges."""
        return binarizer(alphas)(alphas)

    def architecture_objective(self, batch: Batch) -> Callable[[Sequence[Tensor]], Tensor]:
        """The op choice is fixed at the current alphas, so the objective is smooth in the alphas
        and free of host transfers (usable under torch.func transforms)."""
        images, labels = batch
        mixing = binarizer(self.alphas)
        return lambda alphas: F.cross_entropy(self.model(images, mixing(alphas)), labels)

    def arch_step(self, valid_batch: Batch, train_batch: Batch) -> None:
        super().arch_step(valid_batch, train_batch)
        with torch.no_grad():
            self.alphas[0].clamp_(0.0, 1.0)
