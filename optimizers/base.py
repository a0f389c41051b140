"""The interface the runner drives, and the configuration every optimizer shares.

A run first measures the state before any training (row 0), then calls, per epoch: `new_epoch`,
`step` for every batch pair, `end_epoch`; after each row is measured (row k = after k epochs:
`discretize` gives the architecture it reports, `epoch_columns` the optimizer's own columns,
`epoch_records` its per-epoch records), it calls `observe(row)` and then `should_stop()`.
The Hessian uses `arch_parameters` and `architecture_objective`. Optimizers compute only: the
runner does all logging and file I/O.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
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


@dataclass(frozen=True)
class StopRequest:
    """An optimizer's request, after observing a row, to end the search there.

    reason: one line for status.json, the table's `stop_reason` and the log;
    report_epoch: the row (epochs completed) whose architecture the run reports as its result
    (e.g. DARTS-ES points back k epochs); None: the row just observed.
    """

    reason: str
    report_epoch: int | None = None


class ValidationData(Protocol):
    """The search-valid split, as `end_epoch` may read it."""

    def batch(self) -> Batch:
        """One fixed search-valid batch."""

    def batches(self) -> Iterator[Batch]:
        """All of the search-valid split, in a fixed order."""


NORMALIZATIONS = ("cifar10", "enas")
"""Names of the image normalisations `SearchConfig.normalization` may take (harness/data.py)."""


@dataclass
class SearchConfig:
    """Settings common to the one-shot optimizers: the reference defaults of SPEC §5.

    Learning rates per step; the weight learning rate is cosine-annealed per epoch from
    `weight_lr` to `weight_lr_min`. `reference_lr_schedule` reproduces the reference's extra
    scheduler step before epoch 0 (epoch e runs at the schedule's value for e + 1).

    Reference options of the NAS-Bench-1Shot1 code (`--warm_start_epochs`, `--output_weights`
    of optimizers/{darts,gdas,nasp,pc_darts}/train_search.py), off by default as there, for the
    optimizers with architecture parameters (DARTS family, GDAS, NASP):
    warm_start_epochs: no architecture step in the first N epochs (weights only);
    output_weights: False mixes the cell output without weights (concatenation plus the input
    projection, all weighted 1, as NAS-Bench-101 builds it); the output alphas then get no
    gradient and no update. The reference crashes with it off (its cell still indexes the
    missing weights), so this is its evident intent, not a reproduction.
    Data (read by `harness.components.search_data`): train_portion: the first floor(portion * N)
    CIFAR-10 training images are search-train, the rest search-valid (the reference's
    `--train_portion`, 0.5); normalization: "cifar10" (DARTS's mean/std) or "enas" (the rounded
    mean and std of the reference's ENAS data loader).
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
    warm_start_epochs: int = 0
    output_weights: bool = True
    train_portion: float = 0.5
    normalization: str = "cifar10"

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))

    def problems(self) -> list[str]:
        """What is out of range; subclasses with fields of their own extend the list."""
        problems = []
        if self.normalization not in NORMALIZATIONS:
            problems.append(f"normalization={self.normalization!r} is not one of {', '.join(NORMALIZATIONS)}")
        return problems + out_of_range(
            self,
            minimum={
                "batch_size": 1,
                "weight_lr": 0,
                "weight_lr_min": 0,
                "weight_decay": 0,
                "arch_lr": 0,
                "arch_weight_decay": 0,
                "alpha_init_std": 0,
                "warm_start_epochs": 0,
            },
            positive=("grad_clip", "train_portion"),
            fractions=("weight_momentum", "arch_beta1", "arch_beta2", "train_portion"),
        )


def out_of_range(
    config: Any, minimum: dict[str, float] | None = None, positive: Sequence[str] = (), fractions: Sequence[str] = ()
) -> list[str]:
    """Messages for the fields of `config` that are not finite, or below their `minimum`, not > 0,
    or outside [0, 1)."""
    low = minimum or {}
    problems = [
        f"{n}={getattr(config, n)!r} must be a finite number"
        for n in (*low, *positive, *fractions)
        if not math.isfinite(getattr(config, n))
    ]
    problems += [f"{n}={getattr(config, n)!r} must be at least {low[n]}" for n in low if getattr(config, n) < low[n]]
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
    revision: ClassVar[int] = 1
    """Raised when a change makes the optimizer compute something else under the same settings
    (e.g. GDAS's per-cell samples: 2). Part of a run's identity, so that a run made before is
    neither resumed nor reused by a sweep under the new code. Override `revision_for` when only
    some settings changed."""
    columns: ClassVar[dict[str, str]] = {}
    """Per-epoch columns this optimizer adds to every row: name -> pandas dtype ("float64",
    "int64", "string", "boolean"); their values come from `epoch_columns`."""

    @classmethod
    def revision_for(cls, config: SearchConfig) -> int:
        """The revision of a run with these settings: `revision`, plus what a change that reached
        only some settings added for them (then the runs with the others keep their identity).
        Overrides add to `super().revision_for(config)`, so that raising `revision` later still
        sets apart every run."""
        return cls.revision

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

    def epoch_columns(self) -> dict[str, Any]:
        """Values of the declared `columns` for the row being measured (missing ones are NA)."""
        return {}

    def epoch_records(self) -> list[dict[str, Any]]:
        """Per-epoch records for the run's `samples.parquet` (e.g. the score of every sampled
        architecture: keys such as "sample", "arch_hash", "score"); the runner adds the
        row's epoch. Called once per row, after `discretize`."""
        return []

    def observe(self, row: dict[str, Any]) -> None:
        """Feedback: the row just measured (row k = after k epochs; k = 0 before training),
        with every column, e.g. `hessian_eigenvalue`. Called before the row is written, so the
        row and the optimizer's state after observing it are checkpointed together."""

    def should_stop(self) -> StopRequest | None:
        """Called after `observe`: a `StopRequest` ends the search after this row."""
        return None

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


def unweighted_output(mixing: Mixing) -> Mixing:
    """`mixing` with every output weight 1 (the reference option `output_weights=False`); the
    weights stay attached to the output alphas with a zero gradient, so the Hessian keeps its shape."""
    return replace(mixing, output=mixing.output * 0 + 1)


def softmax_mixing(alphas: Sequence[Tensor]) -> Mixing:
    """DARTS mixing: a softmax over each row of every architecture parameter."""
    return Mixing.from_weights([F.softmax(alpha, dim=-1) for alpha in alphas])
