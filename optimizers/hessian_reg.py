"""Explicit Hessian regularisation (SDARTS, Chen & Hsieh, ICML 2020, §4 and Fig. 3): DARTS whose
architecture loss gets a penalty on the curvature of the validation loss w.r.t. the architecture
parameters, a finite-difference estimate along randomly sampled directions.

The paper says only that "the finite difference estimation of Hessian matrix" is added to the
architecture loss, that it needs "a computational graph of the gradient", and that it samples a
random subset of directions at each iteration. The choices made here (SPEC §5c: choose, test,
document):

* Quantity: the squared Frobenius norm ||H||_F^2 = sum of the squared eigenvalues of the
  Hessian H of the architecture loss w.r.t. the raw alphas (the matrix whose dominant
  eigenvalue the harness records, SPEC §6). It bounds the squared spectral norm the paper wants
  small and, unlike the trace or d^T H d, cannot be lowered by making curvature negative.
* Estimator: Hutchinson's, ||H||_F^2 = E ||H v||^2 for Rademacher v (entries +-1). With
  d = v / ||v|| (a unit vector over all alphas) and n alphas, the penalty is
  n * mean over `penalty_directions` draws of ||(g(A + h d) - g(A)) / h||^2, g the gradient of
  the architecture loss. One direction per step by default (the paper's "randomly sample a
  subset"; each one costs a forward and a double-backward pass).
* Forward difference with step h = `fd_step` = 0.1 along the unit direction. The gradients are
  built with `create_graph=True`, so the penalty is differentiated through both of them. The
  loss is piecewise smooth in the alphas (ReLU and max-pool kinks everywhere in the supernet), so
  a small step measures kink crossings rather than curvature: on an 8-channel, 3-cell model and
  32 images, ||(g(A + h d) - g(A)) / h|| was 1.3x the exact ||H d|| at h = 0.1, 5x at 0.01, 50x
  at 1e-4 (float32 and float64 alike). h = 0.1 measures curvature on the scale at which the
  architecture weights move, the scale the paper's argument (the loss change from A to its
  discretization) is about.
* Coefficient `hessian_penalty` = 0.1: the paper gives none. With it, the penalty's gradient is
  of the order of the loss's at initialisation (measured on that model, 48 images: loss gradient
  norm 0.016, penalty gradient 0.07-0.2, so 0.007-0.02 after the coefficient); untuned beyond that.
* Cost: one more forward pass and a double-backward per direction, 2.8x a DARTS step (CPU).
* The penalty is on the Hessian of the loss without the architecture weight decay (Adam adds
  that, as for DARTS); the extra forward pass is in train mode on the same search-valid batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from optimizers.base import Batch, out_of_range
from optimizers.darts import DARTS, DARTSConfig
from optimizers.registry import register


@dataclass
class HessianRegConfig(DARTSConfig):
    """hessian_penalty: coefficient of the ||H||_F^2 estimate in the architecture loss;
    penalty_directions: random directions per architecture step; fd_step: the finite-difference
    step h along a unit direction (in units of the raw alphas)."""

    hessian_penalty: float = 0.1
    penalty_directions: int = 1
    fd_step: float = 0.1

    def problems(self) -> list[str]:
        problems = super().problems() + out_of_range(
            self, minimum={"hessian_penalty": 0, "penalty_directions": 1}, positive=("fd_step",)
        )
        if self.unrolled:
            problems.append("unrolled=True is not supported by hessian-reg (its penalty is first order)")
        return problems


def unit_rademacher(like: Sequence[Tensor]) -> list[Tensor]:
    """A random direction shaped like `like`: entries +-1, scaled to unit norm over all tensors."""
    signs = [torch.randint(0, 2, t.shape, device=t.device).to(t.dtype) * 2 - 1 for t in like]
    count = sum(t.numel() for t in like)
    return [s / count**0.5 for s in signs]


def finite_difference_hvp(
    objective: Callable[[Sequence[Tensor]], Tensor],
    alphas: Sequence[Tensor],
    grads: Sequence[Tensor],
    direction: Sequence[Tensor],
    step: float,
) -> list[Tensor]:
    """(g(A + step * d) - g(A)) / step, about H d: `grads` = g(A), the gradient of `objective` at
    `alphas`; the result stays differentiable w.r.t. `alphas` when `grads` is."""
    shifted = [a + step * d for a, d in zip(alphas, direction, strict=True)]
    shifted_grads = torch.autograd.grad(objective(shifted), shifted, create_graph=True)
    return [(s - g) / step for s, g in zip(shifted_grads, grads, strict=True)]


def curvature_penalty(
    objective: Callable[[Sequence[Tensor]], Tensor],
    alphas: Sequence[Tensor],
    grads: Sequence[Tensor],
    directions: int,
    step: float,
) -> Tensor:
    """Estimate of ||H||_F^2 (0-d): n * mean over `directions` unit Rademacher d of ||H d||^2,
    each H d a forward difference (`finite_difference_hvp`)."""
    count = sum(a.numel() for a in alphas)
    total = 0.0
    for _ in range(directions):
        products = finite_difference_hvp(objective, alphas, grads, unit_rademacher(alphas), step)
        total = total + sum((p * p).sum() for p in products)
    return count * total / directions


@register("hessian-reg")
class HessianRegularization(DARTS):
    """DARTS with an explicit Hessian penalty (SDARTS §4, Fig. 3): a finite-difference estimate of
    the Hessian's squared Frobenius norm along random directions, added to the architecture loss."""

    Config = HessianRegConfig

    def arch_step(self, valid_batch: Batch, train_batch: Batch) -> None:
        objective = self.architecture_objective(valid_batch)
        loss = objective(self.alphas)
        grads = torch.autograd.grad(loss, self.alphas, create_graph=True)
        penalty = curvature_penalty(objective, self.alphas, grads, self.config.penalty_directions, self.config.fd_step)
        self.set_arch_gradients(torch.autograd.grad(loss + self.config.hessian_penalty * penalty, self.alphas))
        self.arch_optimizer.step()
