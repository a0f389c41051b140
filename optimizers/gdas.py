"""GDAS (Dong & Yang, 2019) on the one-shot model: one op per choice node, Gumbel-sampled.

Per forward pass, the op of each choice node is drawn by hard Gumbel-softmax with a
straight-through gradient, and only that op runs; input and output edges are weighted by soft
Gumbel-softmax. probs = softmax((log_softmax(alpha) + g) / tau) per row, g standard Gumbel
(the reference's F.gumbel_softmax(alpha): the same, softmax being shift-invariant). The
temperature of epoch e (0-based) of E is the reference's: tau_max - (tau_max - tau_min) * e / E,
accumulated epoch by epoch as optimizers/gdas/train_search.py does (`tau_epoch += tau_step`
after each epoch): 10 in epoch 0, 5.5 in epoch 50, 1.09 in the last of 100 (it never reaches
tau_min).

Choices, and where they differ from the NAS-Bench-1Shot1 reference (optimizers/gdas):
- g = -log(E), E ~ Exp(1) clamped below at the smallest normal float (float32: g <= 87.3), so
  g is always finite: no resampling loop (Dong's GDAS loops, a host sync per check);
- one sample per forward pass, shared by all cells (the model mixes every cell alike); the
  reference draws a fresh sample in each cell;
- the gradient reaches the op alphas only through the chosen op's probability, as in the
  reference's port (its MixedOpGDAS leaves the zero-weight ops out of the sum);
  `straight_through="all"` is Dong's GDAS instead: the ops that did not run add their zero
  weights as constants, so every op probability gets the summed output gradient;
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

STRAIGHT_THROUGH = ("reference", "all")
"""GDAS op weights' gradient: through the chosen op only (the reference's port) or all (Dong's)."""


@dataclass
class GDASConfig(SearchConfig):
    tau_max: float = 10.0
    tau_min: float = 1.0
    arch_grad_clip: float = 5.0
    straight_through: str = "reference"

    def problems(self) -> list[str]:
        problems = super().problems() + out_of_range(self, positive=("tau_max", "tau_min", "arch_grad_clip"))
        if self.straight_through not in STRAIGHT_THROUGH:
            problems.append(f"straight_through={self.straight_through!r} is not one of {', '.join(STRAIGHT_THROUGH)}")
        return problems


def gumbel_temperature(epoch: int, epochs: int, tau_max: float, tau_min: float) -> float:
    """tau of epoch `epoch` (0-based) of `epochs`: `tau_max` lowered by (tau_max - tau_min) / epochs
    after each epoch, summed in the reference's order (so equal to it bit for bit)."""
    tau, step = tau_max, (tau_min - tau_max) / epochs
    for _ in range(epoch):
        tau += step
    return tau


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

        Op weights are one-hot in value with a straight-through gradient to probs: at the chosen
        op only, one_hot(choice) * (1 + probs - probs.detach()) (the reference), or at every op,
        one_hot(choice) + probs - probs.detach() (`straight_through="all"`). Costs one
        device-to-host transfer (the choice).
        """
        noise = [gumbel_noise(alpha) for alpha in alphas]
        index = (F.log_softmax(alphas[0].detach(), dim=-1) + noise[0]).argmax(dim=-1)
        op_choice = index.tolist()
        one_hot = F.one_hot(index, alphas[0].shape[-1]).to(alphas[0].dtype)
        tau, only_chosen = self.tau, self.config.straight_through == "reference"

        def mixing(alphas: Sequence[Tensor]) -> Mixing:
            op_probs, *edge_probs = [gumbel_softmax(alpha, g, tau) for alpha, g in zip(alphas, noise, strict=True)]
            passed = op_probs - op_probs.detach()
            op_weights = one_hot * (1 + passed) if only_chosen else one_hot + passed
            weights = [op_weights, *edge_probs]
            return self.output_option(Mixing.from_weights(weights, op_choice))

        return mixing

    def mixing(self, alphas: Sequence[Tensor]) -> Mixing:
        """A fresh Gumbel sample at `alphas` (the weight step's)."""
        return self.sampler(alphas)(alphas)

    def arch_step(self, valid_batch: Batch, train_batch: Batch) -> None:
        """First order, with a fresh sample and the gradient norm clipped at `arch_grad_clip`."""
        loss = self.architecture_objective(valid_batch)(self.alphas)
        self.set_arch_gradients(torch.autograd.grad(loss, self.alphas))
        nn.utils.clip_grad_norm_(self.alphas, self.config.arch_grad_clip, foreach=True)
        self.arch_optimizer.step()

    def eval_mixing(self) -> Mixing:
        alphas = [alpha.detach() for alpha in self.alphas]
        return self.output_option(binarizer(alphas)(alphas))

    def architecture_objective(self, batch: Batch) -> Callable[[Sequence[Tensor]], Tensor]:
        """The noise and the op choice are drawn once, here, so the objective is deterministic."""
        images, labels = batch
        mixing = self.sampler(self.alphas)
        return lambda alphas: F.cross_entropy(self.model(images, mixing(alphas)), labels)
