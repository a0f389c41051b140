"""GDAS (Dong & Yang, 2019) on the one-shot model: one op per choice node, Gumbel-sampled.

Per forward pass, the op of each choice node is drawn by hard Gumbel-softmax with a
straight-through gradient, and only that op runs; input and output edges are weighted by soft
Gumbel-softmax. probs = softmax((log_softmax(alpha) + g) / tau) per row, g standard Gumbel; the
temperature tau falls linearly from `tau_max` (epoch 0) to `tau_min` (the last epoch).

Choices, and where they differ from the NAS-Bench-1Shot1 reference (optimizers/gdas):
- g = -log(E), E ~ Exp(1) clamped below at the smallest normal float (float32: g <= 87.3), so
  g is always finite: no resampling loop (Dong's GDAS loops, a host sync per check);
- one sample per forward pass, shared by all cells (the model mixes every cell alike); the
  reference draws a fresh sample in each cell;
- the ops that did not run get GDAS's straight-through gradient (the model adds their zero
  weights as constants, as in Dong's GDAS); the reference's port skips them, so they get none;
- the architecture gradient norm is clipped at `arch_grad_clip` (5) before the Adam step, as
  the reference does ("Gumbel softmax leads to gradients with high magnitude").
Evaluation (`eval_mixing`) is deterministic: the argmax op of each node, softmax edges.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.nasbench1shot1 import Mixing, OneShotModel, SearchSpace
from optimizers.base import Batch, SearchConfig, out_of_range
from optimizers.darts import DARTS
from optimizers.nasp import binarizer
from optimizers.registry import register


@dataclass
class GDASConfig(SearchConfig):
    tau_max: float = 10.0
    tau_min: float = 1.0
    arch_grad_clip: float = 5.0

    def problems(self) -> list[str]:
        return super().problems() + out_of_range(self, positive=("tau_max", "tau_min", "arch_grad_clip"))


def gumbel_temperature(epoch: int, epochs: int, tau_max: float, tau_min: float) -> float:
    """Linear from `tau_max` at epoch 0 to `tau_min` at epoch `epochs - 1`."""
    return tau_max - (tau_max - tau_min) * epoch / max(epochs - 1, 1)


def gumbel_noise(like: Tensor) -> Tensor:
    """Standard Gumbel noise shaped like `like`, always finite (see the module docstring)."""
    return -torch.empty_like(like).exponential_().clamp_min_(torch.finfo(like.dtype).tiny).log()


def gumbel_softmax(alpha: Tensor, noise: Tensor, tau: float) -> Tensor:
    """softmax((log_softmax(alpha) + noise) / tau) per row; same shape as `alpha`."""
    return F.softmax((F.log_softmax(alpha, dim=-1) + noise) / tau, dim=-1)


@register("gdas")
class GDAS(DARTS):
    """DARTS with Gumbel-sampled architectures: hard op choices, soft edges, annealed temperature."""

    Config = GDASConfig

    def __init__(self, space: SearchSpace, model: OneShotModel, config: GDASConfig):
        super().__init__(space, model, config)
        self.tau = config.tau_max

    @property
    def capturable(self) -> bool:
        """No: the op choice is read on the host every step."""
        return False

    def new_epoch(self, epoch: int, epochs: int) -> None:
        super().new_epoch(epoch, epochs)
        self.tau = gumbel_temperature(epoch, epochs, self.config.tau_max, self.config.tau_min)

    def sampler(self, alphas: Sequence[Tensor]) -> Callable[[Sequence[Tensor]], Mixing]:
        """Draw Gumbel noise and the op choice at `alphas`; return alphas -> Mixing with both fixed.

        Op weights are one_hot(choice) + (probs - probs.detach()): one-hot in value, the
        straight-through gradient of probs. Costs one device-to-host transfer (the choice).
        """
        noise = [gumbel_noise(alpha) for alpha in alphas]
        index = (F.log_softmax(alphas[0].detach(), dim=-1) + noise[0]).argmax(dim=-1)
        op_choice = index.tolist()
        one_hot = F.one_hot(index, alphas[0].shape[-1]).to(alphas[0].dtype)
        tau = self.tau

        def mixing(alphas: Sequence[Tensor]) -> Mixing:
            op_probs, *edge_probs = [gumbel_softmax(alpha, g, tau) for alpha, g in zip(alphas, noise, strict=True)]
            return Mixing.from_weights([one_hot + (op_probs - op_probs.detach()), *edge_probs], op_choice)

        return mixing

    def mixing(self, alphas: Sequence[Tensor]) -> Mixing:
        """A fresh Gumbel sample at `alphas` (the weight step's)."""
        return self.sampler(alphas)(alphas)

    def arch_step(self, valid_batch: Batch, train_batch: Batch) -> None:
        """First order, with a fresh sample and the gradient norm clipped at `arch_grad_clip`."""
        loss = self.architecture_objective(valid_batch)(self.alphas)
        for alpha, grad in zip(self.alphas, torch.autograd.grad(loss, self.alphas), strict=True):
            alpha.grad = grad
        nn.utils.clip_grad_norm_(self.alphas, self.config.arch_grad_clip)
        self.arch_optimizer.step()

    def eval_mixing(self) -> Mixing:
        alphas = [alpha.detach() for alpha in self.alphas]
        return binarizer(alphas)(alphas)

    def architecture_objective(self, batch: Batch) -> Callable[[Sequence[Tensor]], Tensor]:
        """The noise and the op choice are drawn once, here, so the objective is deterministic."""
        images, labels = batch
        mixing = self.sampler(self.alphas)
        return lambda alphas: F.cross_entropy(self.model(images, mixing(alphas)), labels)
