"""Training of the supernet weights (SPEC §5): SGD, cosine schedule, gradient clipping.

The SGD update and the clipping run as multi-tensor (foreach) operations: a few kernels for all
parameters instead of a few per parameter, with the same arithmetic as the per-parameter loops.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from optimizers.base import SearchConfig


def cosine_lr(epoch: int, epochs: int, lr: float, lr_min: float) -> float:
    """Cosine annealing from `lr` (epoch 0) towards `lr_min` (epoch `epochs`), per epoch."""
    return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * epoch / epochs)) / 2


class WeightTrainer:
    """SGD with momentum and weight decay on a module's parameters, with norm clipping."""

    def __init__(self, module: nn.Module, config: SearchConfig):
        self.config = config
        self.parameters = [p for p in module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(
            self.parameters,
            lr=config.weight_lr,
            momentum=config.weight_momentum,
            weight_decay=config.weight_decay,
            foreach=True,
        )

    def set_epoch(self, epoch: int, epochs: int) -> float:
        """Set and return the learning rate of epoch `epoch` (0-based) of `epochs`."""
        offset = 1 if self.config.reference_lr_schedule else 0
        lr = cosine_lr(min(epoch + offset, epochs), epochs, self.config.weight_lr, self.config.weight_lr_min)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def step(self, loss: Tensor) -> None:
        """Back-propagate `loss` into the weights, clip the gradient norm, take an SGD step.

        Every weight steps from the first step on, also one the loss does not reach (an op that did
        not run in a pass with a host-side op choice: GDAS, NASP, random-ws with
        `sampled_ops_only`): its gradient is zero, so weight decay and momentum apply. The reference
        was written for PyTorch 1.x, whose `zero_grad()` zeroed gradients instead of dropping them:
        there a weight decays every step once it has had a gradient (before that, SGD skips it; under
        PyTorch >= 2.0 it skips every weight its step does not reach)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=self.parameters)
        for parameter in self.parameters:
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
        nn.utils.clip_grad_norm_(self.parameters, self.config.grad_clip, foreach=True)
        self.optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)
