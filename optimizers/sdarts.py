"""SDARTS (Chen & Hsieh, 2020): the weight step runs on perturbed architecture weights.

The perturbation is a mixin over any DARTS-family optimizer: SDARTS-RS and SDARTS-ADV perturb
DARTS, PC-DARTS-RS and PC-DARTS-ADV perturb PC-DARTS (the paper's Table 1 variants).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.nasbench1shot1 import Mixing
from optimizers.base import Batch, out_of_range
from optimizers.darts import DARTS, PCDARTS, DARTSConfig
from optimizers.registry import register


@dataclass
class SDARTSConfig(DARTSConfig):
    epsilon_min: float = 0.03
    epsilon_max: float = 0.3
    attack_steps: int = 7

    def problems(self) -> list[str]:
        return super().problems() + out_of_range(self, minimum={"epsilon_min": 0, "epsilon_max": 0, "attack_steps": 1})


def perturbation_radius(epoch: int, epochs: int, epsilon_min: float, epsilon_max: float) -> float:
    """The L-inf radius of epoch `epoch` (0-based): linear from epsilon_min, reaching epsilon_max at `epochs`."""
    return epsilon_min + (epsilon_max - epsilon_min) * epoch / epochs


def clip_rows(weights: Tensor) -> Tensor:
    """Clip to [0, 1] and renormalise each row to sum 1; a row clipped to all zeros becomes
    one-hot at its (unclipped) argmax, as the reference does. (..., k) -> (..., k)."""
    clipped = weights.clamp(0.0, 1.0)
    totals = clipped.sum(dim=-1, keepdim=True)
    one_hot = F.one_hot(weights.argmax(dim=-1), weights.shape[-1]).to(weights.dtype)
    clipped = torch.where(totals == 0, one_hot, clipped)
    return clipped / clipped.sum(dim=-1, keepdim=True)


def random_smoothing(weights: Sequence[Tensor], epsilon: float) -> list[Tensor]:
    """SDARTS-RS: add uniform noise in [-epsilon, epsilon] to each weight, then `clip_rows`."""
    return [clip_rows(w + torch.empty_like(w).uniform_(-epsilon, epsilon)) for w in weights]


def adversarial_attack(
    weights: Sequence[Tensor], epsilon: float, loss_fn: Callable[[list[Tensor]], Tensor], steps: int
) -> list[Tensor]:
    """SDARTS-ADV: `steps` steps of PGD ascent on `loss_fn` in the L-inf ball of radius
    `epsilon` around `weights` (random start, step 2 * epsilon / steps, `clip_rows` after each
    step). Falls back to `weights` when the attack did not raise the loss (no host sync)."""
    clean = [w.detach() for w in weights]
    step_size = 2 * epsilon / steps
    with torch.no_grad():
        clean_loss = loss_fn(clean)
        attacked = [clip_rows(w + torch.empty_like(w).uniform_(-epsilon, epsilon)) for w in clean]
    for _ in range(steps):
        attacked = [w.requires_grad_() for w in attacked]
        grads = torch.autograd.grad(loss_fn(attacked), attacked)
        with torch.no_grad():
            attacked = [
                clip_rows(c + (w + step_size * g.sign() - c).clamp(-epsilon, epsilon))
                for w, g, c in zip(attacked, grads, clean)
            ]
    with torch.no_grad():
        raised = loss_fn(attacked) >= clean_loss
    return [torch.where(raised, w, c) for w, c in zip(attacked, clean)]


class SmoothedWeightStep:
    """Mixin for DARTS-family optimizers: softmax the alphas, perturb, and run the weight step
    on the perturbed weights directly (no second softmax); the alphas themselves never change."""

    Config = SDARTSConfig
    epsilon: float = SDARTSConfig.epsilon_min

    def new_epoch(self, epoch: int, epochs: int) -> None:
        super().new_epoch(epoch, epochs)
        self.epsilon = perturbation_radius(epoch, epochs, self.config.epsilon_min, self.config.epsilon_max)

    def weight_mixing(self, train_batch: Batch) -> Mixing:
        clean = [F.softmax(alpha.detach(), dim=-1) for alpha in self.alphas]
        return self.output_option(Mixing.from_weights(self.perturb(clean, train_batch)))

    @abstractmethod
    def perturb(self, weights: list[Tensor], train_batch: Batch) -> list[Tensor]:
        """Perturbed copies of softmaxed weights (rows on the simplex) for the weight step."""


class RandomSmoothing(SmoothedWeightStep):
    def perturb(self, weights: list[Tensor], train_batch: Batch) -> list[Tensor]:
        return random_smoothing(weights, self.epsilon)


class AdversarialSmoothing(SmoothedWeightStep):
    """The attack runs with the network in eval mode, as the reference does."""

    def perturb(self, weights: list[Tensor], train_batch: Batch) -> list[Tensor]:
        images, labels = train_batch

        def loss_fn(candidate: list[Tensor]) -> Tensor:
            return F.cross_entropy(self.model(images, self.output_option(Mixing.from_weights(candidate))), labels)

        self.model.eval()
        try:
            return adversarial_attack(weights, self.epsilon, loss_fn, self.config.attack_steps)
        finally:
            self.model.train()


@register("sdarts-rs")
class SDARTSRS(RandomSmoothing, DARTS):
    """SDARTS-RS: DARTS whose weight step sees randomly perturbed architecture weights."""


@register("sdarts-adv")
class SDARTSADV(AdversarialSmoothing, DARTS):
    """SDARTS-ADV: DARTS whose weight step sees adversarially perturbed architecture weights."""


@register("pcdarts-rs")
class PCDARTSRS(RandomSmoothing, PCDARTS):
    """PC-DARTS with SDARTS-RS's random smoothing."""


@register("pcdarts-adv")
class PCDARTSADV(AdversarialSmoothing, PCDARTS):
    """PC-DARTS with SDARTS-ADV's adversarial perturbation."""
