"""DARTS (Liu et al., 2019) and PC-DARTS (Xu et al., 2020) on the one-shot model.

First order by default (SPEC §5); `unrolled=True` gives second-order DARTS, its implicit
gradient term estimated by finite differences as in the DARTS paper (eq. 7-8), with the
paper's step 0.01 / |grad|. On ReLU/max-pool networks that difference quotient crosses kinks and
is a noisy estimate of the second-order term (relative errors of order 1 against the exact
Hessian-vector product on small models; accurate only for steps below ~1e-5), as in the reference.

Reference options (SearchConfig): `warm_start_epochs` (no architecture step in the first N
epochs) and `output_weights=False` (unweighted cell output; the output alphas stay as they are).
See docs/fidelity.md for how DARTS here compares with the reference, aspect by aspect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from benchmarks.nasbench1shot1 import Mixing, OneShotModel, SearchSpace
from benchmarks.nasbench101 import ModelSpec
from optimizers.base import (
    Batch,
    SearchConfig,
    SearchOptimizer,
    StepStats,
    init_alphas,
    softmax_mixing,
    step_stats,
    unweighted_output,
)
from optimizers.registry import register
from optimizers.weights import WeightTrainer

FINITE_DIFFERENCE_SCALE = 0.01
"""Second-order DARTS: the finite-difference step is this over the norm of the weight gradient."""


@dataclass
class DARTSConfig(SearchConfig):
    unrolled: bool = False


@register("darts")
class DARTS(SearchOptimizer):
    """Softmax mixing of all ops and edges; an Adam step on the alphas (search-valid batch),
    then an SGD step on the weights (search-train batch)."""

    Config = DARTSConfig

    def __init__(self, space: SearchSpace, model: OneShotModel, config: DARTSConfig):
        super().__init__(space, model, config)
        self.alphas = init_alphas(space, config.alpha_init_std, self.device)
        self.arch_optimizer = torch.optim.Adam(
            self.alphas,
            lr=config.arch_lr,
            betas=(config.arch_beta1, config.arch_beta2),
            weight_decay=config.arch_weight_decay,
            capturable=self.device.type == "cuda",
            foreach=True,
        )
        self.weights = WeightTrainer(model, config)
        self.arch_updates = config.warm_start_epochs == 0
        """False during the warm-start epochs (set by `new_epoch`)."""

    @property
    def capturable(self) -> bool:
        return not self.config.unrolled

    def mixing(self, alphas: Sequence[Tensor]) -> Mixing:
        """How architecture parameters become mixing weights (softmax per row)."""
        return self.output_option(softmax_mixing(alphas))

    def output_option(self, mixing: Mixing) -> Mixing:
        """`mixing` as the `output_weights` option has it (unchanged by default)."""
        return mixing if self.config.output_weights else unweighted_output(mixing)

    def new_epoch(self, epoch: int, epochs: int) -> None:
        self.weights.set_epoch(epoch, epochs)
        self.arch_updates = epoch >= self.config.warm_start_epochs

    def step(self, train_batch: Batch, valid_batch: Batch) -> StepStats:
        if self.arch_updates:
            self.arch_step(valid_batch, train_batch)
        return self.weight_step(train_batch)

    def set_arch_gradients(self, grads: Sequence[Tensor]) -> None:
        """Hand `grads` to the Adam step; without output weights the output alphas get none
        (Adam then leaves them, weight decay included, as the reference would)."""
        for alpha, grad in zip(self.alphas, grads, strict=True):
            alpha.grad = grad
        if not self.config.output_weights:
            self.alphas[1].grad = None

    def arch_step(self, valid_batch: Batch, train_batch: Batch) -> None:
        if self.config.unrolled:
            grads = self._unrolled_gradients(valid_batch, train_batch)
        else:
            grads = torch.autograd.grad(self.architecture_objective(valid_batch)(self.alphas), self.alphas)
        self.set_arch_gradients(grads)
        self.arch_optimizer.step()

    def weight_mixing(self, train_batch: Batch) -> Mixing | tuple[Mixing, ...]:
        """Mixing weights of the weight step (no gradient to the alphas): one for all cells, or,
        where `mixing` gives them (GDAS), one per cell."""
        return self.mixing([alpha.detach() for alpha in self.alphas])

    def weight_step(self, train_batch: Batch) -> StepStats:
        images, labels = train_batch
        logits = self.model(images, self.weight_mixing(train_batch))
        loss = F.cross_entropy(logits, labels)
        self.weights.step(loss)
        return step_stats(logits, labels, loss)

    def discretize(self) -> ModelSpec:
        return self.space.discretize(self.alphas)

    def eval_mixing(self) -> Mixing:
        return self.mixing([alpha.detach() for alpha in self.alphas])

    def arch_parameters(self) -> list[Tensor]:
        return self.alphas

    def architecture_objective(self, batch: Batch) -> Callable[[Sequence[Tensor]], Tensor]:
        images, labels = batch
        return lambda alphas: F.cross_entropy(self.model(images, self.mixing(alphas)), labels)

    def state_dict(self) -> dict[str, Any]:
        return {
            "alphas": [alpha.detach().clone() for alpha in self.alphas],
            "arch_optimizer": self.arch_optimizer.state_dict(),
            "weights": self.weights.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for alpha, saved in zip(self.alphas, state["alphas"], strict=True):
                alpha.copy_(saved)
        self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        self.weights.load_state_dict(state["weights"])

    def _unrolled_gradients(self, valid_batch: Batch, train_batch: Batch) -> list[Tensor]:
        """d/d alpha of L_val(w', alpha) with w' one virtual SGD step from w (DARTS eq. 7-8).

        The virtual steps run on copies of the BatchNorm buffers, so running statistics only
        change in the real steps.
        """
        names, weights = zip(*[(n, p) for n, p in self.model.named_parameters() if p.requires_grad])
        optimizer_state = self.weights.optimizer.state
        lr = self.weights.optimizer.param_groups[0]["lr"]
        momentum, decay = self.config.weight_momentum, self.config.weight_decay

        def loss_at(params: Sequence[Tensor], batch: Batch, alphas: Sequence[Tensor]) -> Tensor:
            buffers = {n: b.clone() for n, b in self.model.named_buffers()}
            images, labels = batch
            logits = functional_call(
                self.model, ({**dict(zip(names, params)), **buffers}), (images, self.mixing(alphas))
            )
            return F.cross_entropy(logits, labels)

        train_grads = torch.autograd.grad(loss_at(weights, train_batch, self.alphas), weights)
        with torch.no_grad():
            virtual = [
                w - lr * (momentum * optimizer_state[w]["momentum_buffer"] + g + decay * w)
                if optimizer_state.get(w, {}).get("momentum_buffer") is not None
                else w - lr * (g + decay * w)
                for w, g in zip(weights, train_grads)
            ]
        virtual = [v.requires_grad_() for v in virtual]
        grads = torch.autograd.grad(loss_at(virtual, valid_batch, self.alphas), [*self.alphas, *virtual])
        alpha_grads, virtual_grads = grads[: len(self.alphas)], grads[len(self.alphas) :]
        radius = FINITE_DIFFERENCE_SCALE / torch.cat([g.flatten() for g in virtual_grads]).norm()
        implicit = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                shifted = [w + sign * radius * g for w, g in zip(weights, virtual_grads)]
            implicit.append(torch.autograd.grad(loss_at(shifted, train_batch, self.alphas), self.alphas))
        return [g - lr * (plus - minus) / (2 * radius) for g, plus, minus in zip(alpha_grads, *implicit)]


@register("pcdarts")
class PCDARTS(DARTS):
    """DARTS with partial channel connections: each mixed op sees 1/4 of the channels, the rest
    bypass it, and the result is channel-shuffled (no edge normalisation in these spaces)."""

    model_options: ClassVar[dict[str, Any]] = {"partial_channels": 4}
