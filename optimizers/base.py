"""The interface the runner drives, and the configuration every optimizer shares.

A run calls, per epoch: `new_epoch`, then `step` for every batch pair, then `end_epoch`, then
`discretize` (the architecture reported for the epoch). The Hessian uses `arch_parameters` and
`architecture_objective`. Optimizers compute only: the runner does all logging and file I/O.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.nasbench1shot1 import Mixing, OneShotModel, SearchSpace
from benchmarks.nasbench101 import ModelSpec

Batch = tuple[Tensor, Tensor]
"""(images (B, 3, 32, 32) float32, labels (B,) int64), on the model's device."""

StepStats = dict[str, Tensor]
"""0-d tensors from one step, left on the device: 'loss' (mean training loss of the weight step)
and 'correct' (its number of correct predictions)."""


class ValidationData(Protocol):
    """The search-valid split, as `end_epoch` may read it."""

    def batch(self) -> Batch:
        """One fixed search-valid batch."""

    def batches(self) -> Iterator[Batch]:
        """All of the search-valid split, in a fixed order."""


@dataclass
class SearchConfig:
    """Settings common to the one-shot optimizers: the reference defaults of SPEC §5.

    Learning rates per step; the weight learning rate is cosine-annealed per epoch from
    `weight_lr` to `weight_lr_min`. `reference_lr_schedule` reproduces the reference's extra
    scheduler step before epoch 0 (epoch e runs at the schedule's value for e + 1).
    """

    batch_size: int = 96
    weight_lr: float = 0.025
    weight_lr_min: float = 0.001
    weight_momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    arch_lr: float = 3e-4
    arch_beta1: float = 0.5
    arch_beta2: float = 0.999
    arch_weight_decay: float = 1e-3
    alpha_init_std: float = 1e-3
    reference_lr_schedule: bool = False

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))

    def problems(self) -> list[str]:
        """What is out of range; subclasses with fields of their own extend the list."""
        return out_of_range(
            self,
            minimum={
                "batch_size": 1,
                "weight_lr": 0,
                "weight_lr_min": 0,
                "weight_decay": 0,
                "arch_lr": 0,
                "arch_weight_decay": 0,
                "alpha_init_std": 0,
            },
            positive=("grad_clip",),
            fractions=("weight_momentum", "arch_beta1", "arch_beta2"),
        )


def out_of_range(
    config: Any, minimum: dict[str, float] | None = None, positive: Sequence[str] = (), fractions: Sequence[str] = ()
) -> list[str]:
    """Messages for the fields of `config` below their `minimum`, not > 0, or outside [0, 1)."""
    low = minimum or {}
    problems = [f"{n}={getattr(config, n)!r} must be at least {low[n]}" for n in low if getattr(config, n) < low[n]]
    problems += [f"{n}={getattr(config, n)!r} must be > 0" for n in positive if not getattr(config, n) > 0]
    problems += [f"{n}={getattr(config, n)!r} must be in [0, 1)" for n in fractions if not 0 <= getattr(config, n) < 1]
    return problems


class SearchOptimizer(ABC):
    """Base class of the one-shot optimizers; register subclasses with `@register("name")`.

    Subclasses may set `Config` (a `SearchConfig` subclass with their own fields and defaults)
    and `model_options` (extra `OneShotModel` arguments, e.g. partial channels).
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type[SearchConfig]] = SearchConfig
    model_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, space: SearchSpace, model: OneShotModel, config: SearchConfig):
        self.space = space
        self.model = model
        self.config = config
        self.device = next(model.parameters()).device

    @property
    def capturable(self) -> bool:
        """True if `step` makes no host synchronisation and keeps its shapes, so the runner may
        replay it as a CUDA graph (recaptured after each `new_epoch`)."""
        return False

    def new_epoch(self, epoch: int, epochs: int) -> None:
        """Called before the first step of epoch `epoch` (0-based) of `epochs`: set schedules."""

    @abstractmethod
    def step(self, train_batch: Batch, valid_batch: Batch) -> StepStats:
        """One search step: by default an architecture step on `valid_batch`, then a weight step."""

    def end_epoch(self, valid: ValidationData) -> None:
        """Called after the last step of an epoch, before `discretize`."""

    @abstractmethod
    def discretize(self) -> ModelSpec:
        """The NAS-Bench-101 model this optimizer reports for the current state."""

    @abstractmethod
    def eval_mixing(self) -> Mixing:
        """Mixing weights for evaluating the supernet (validation loss and accuracy)."""

    def arch_parameters(self) -> list[Tensor]:
        """The architecture parameters the Hessian is taken over (none: no Hessian)."""
        return []

    def architecture_objective(self, batch: Batch) -> Callable[[Sequence[Tensor]], Tensor]:
        """The architecture loss on `batch` as a pure function of tensors shaped like
        `arch_parameters()`, without weight decay (the Hessian adds it). Random choices are
        drawn once, when the objective is made, so repeated calls agree."""
        raise NotImplementedError(f"{self.name} has no architecture parameters")

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything besides the model's own state needed to resume exactly."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""


def step_stats(logits: Tensor, labels: Tensor, loss: Tensor) -> StepStats:
    """The statistics a step returns, without a host sync."""
    return {"loss": loss.detach(), "correct": (logits.detach().argmax(dim=1) == labels).sum()}


def init_alphas(space: SearchSpace, std: float, device: torch.device) -> list[Tensor]:
    """Architecture parameters shaped `space.alpha_shapes`, std * N(0, 1), requiring grad."""
    return [(std * torch.randn(shape, device=device)).requires_grad_() for shape in space.alpha_shapes]


def softmax_mixing(alphas: Sequence[Tensor]) -> Mixing:
    """DARTS mixing: a softmax over each row of every architecture parameter."""
    return Mixing.from_weights([F.softmax(alpha, dim=-1) for alpha in alphas])
