"""GDAS (Dong & Yang, 2019) on the one-shot model: one op per choice node, Gumbel-sampled.

Per forward pass and cell, the op of each choice node is drawn by hard Gumbel-softmax with a
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
- as the reference, each cell of each forward pass draws its own sample (one Mixing per cell),
  in the reference's order of draws;
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


@register("gdas")
class GDAS(DARTS):
    """DARTS with Gumbel-sampled architectures: hard op choices, soft edges, annealed temperature."""

    Config = GDASConfig
    revision = 2  # 2: a Gumbel sample per cell (was one per forward pass)

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

    def sampler(self, alphas: Sequence[Tensor]) -> Callable[[Sequence[Tensor]], tuple[Mixing, ...]]:
        """Draw Gumbel noise and the op choice of every cell at `alphas`; return alphas -> one
        Mixing per cell, with both fixed.

        As the reference's `GDASNetwork.forward`, each cell draws its own sample, cell by cell,
        in the order: op noise, output noise (only with `output_weights`), each searched node's
        input noise. Op weights are one-hot in value with a straight-through gradient to probs:
        at the chosen op only, one_hot(choice) * (1 + probs - probs.detach()) (the reference), or
        at every op, one_hot(choice) + probs - probs.detach() (`straight_through="all"`). Costs
        one device-to-host transfer (all cells' choices together).
        """
        cells = len(self.model.cells)
        draw = [i != 1 or self.config.output_weights for i in range(len(alphas))]
        drawn = [  # cell by cell, in the reference's order of draws
            [gumbel_noise(alpha) if is_drawn else torch.zeros_like(alpha) for alpha, is_drawn in zip(alphas, draw)]
            for _ in range(cells)
        ]
        noise = [torch.stack(per_alpha) for per_alpha in zip(*drawn)]  # per alpha: (cells, *its shape)
        index = (F.log_softmax(alphas[0].detach(), dim=-1) + noise[0]).argmax(dim=-1)  # (cells, n)
        op_choices = index.tolist()
        one_hot = F.one_hot(index, alphas[0].shape[-1]).to(alphas[0].dtype)
        tau, only_chosen = self.tau, self.config.straight_through == "reference"

        def mixing(alphas: Sequence[Tensor]) -> tuple[Mixing, ...]:
            op_probs, *edge_probs = [
                F.softmax((F.log_softmax(alpha, dim=-1) + g) / tau, dim=-1) for alpha, g in zip(alphas, noise)
            ]
            passed = op_probs - op_probs.detach()
            op_weights = one_hot * (1 + passed) if only_chosen else one_hot + passed
            per_cell = zip(op_weights.unbind(0), *(probs.unbind(0) for probs in edge_probs), strict=True)
            return tuple(
                self.output_option(Mixing.from_weights(list(weights), choice))
                for weights, choice in zip(per_cell, op_choices, strict=True)
            )

        return mixing

    def mixing(self, alphas: Sequence[Tensor]) -> tuple[Mixing, ...]:
        """A fresh Gumbel sample per cell at `alphas` (the weight step's)."""
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
