"""Random search with weight sharing (Li & Talwalkar, 2019): the worked example of an optimizer.

Each step trains the shared weights on one architecture drawn uniformly at random. After each
epoch, `eval_samples` random architectures are scored on one search-valid batch, the best
`eval_top` of them on the whole search-valid split, and the best one is reported. Scoring uses
the network in train mode (BatchNorm batch statistics): the running statistics of a shared
layer belong to whichever architecture used it last, so the reported one then takes its own
(`OneShotModel.adopt_batch_statistics`) before the runner validates it in eval mode. Only the
sampled ops run (`Mixing.from_choice`): ops that were not drawn get no BatchNorm update, weight
decay or momentum step, whereas the reference's discrete wrapper runs every op with one-hot
weights. Defaults follow the NAS-Bench-1Shot1 reference (batch 64, gradient clip 0.25, 1,000
samples, top 5). See docs/adding-an-optimizer.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.nasbench1shot1 import PRIMITIVES, CellChoice, Mixing, OneShotModel, SearchSpace
from benchmarks.nasbench101 import ModelSpec
from optimizers.base import (
    Batch,
    SearchConfig,
    SearchOptimizer,
    StepStats,
    ValidationData,
    out_of_range,
    step_stats,
)
from optimizers.registry import register
from optimizers.weights import WeightTrainer


@dataclass
class RandomWSConfig(SearchConfig):
    batch_size: int = 64
    grad_clip: float = 0.25
    eval_samples: int = 1000
    eval_top: int = 5

    def problems(self) -> list[str]:
        return super().problems() + out_of_range(self, minimum={"eval_samples": 1, "eval_top": 1})


def random_choice(space: SearchSpace) -> CellChoice:
    """One architecture of `space`, uniformly at random (torch's global CPU generator: no device sync)."""
    n = space.num_choice_nodes
    ops = torch.randint(len(PRIMITIVES), (n,)).tolist()
    parents = []
    for node in range(1, n + 2):
        options = space.parent_choices(node)
        parents.append(options[int(torch.randint(len(options), ()))])
    return CellChoice(tuple(ops), tuple(parents[:-1]), parents[-1])


def choice_to_state(choice: CellChoice) -> dict[str, Any]:
    """A `CellChoice` as plain tuples of ints (loadable with `torch.load(weights_only=True)`)."""
    return asdict(choice)


def choice_from_state(state: dict[str, Any]) -> CellChoice:
    return CellChoice(tuple(state["ops"]), tuple(map(tuple, state["parents"])), tuple(state["output_parents"]))


@register("random-ws")
class RandomWS(SearchOptimizer):
    """Uniformly sampled one-hot architectures train the supernet; the best of many samples is reported."""

    Config = RandomWSConfig

    def __init__(self, space: SearchSpace, model: OneShotModel, config: RandomWSConfig):
        super().__init__(space, model, config)
        self.weights = WeightTrainer(model, config)
        self.best = self.sample(1)[0]  # reported until the first end_epoch

    def sample(self, count: int) -> list[CellChoice]:
        """`count` architectures to train or score."""
        return [random_choice(self.space) for _ in range(count)]

    def new_epoch(self, epoch: int, epochs: int) -> None:
        self.weights.set_epoch(epoch, epochs)

    def step(self, train_batch: Batch, valid_batch: Batch) -> StepStats:
        return self.weight_step(self.sample(1)[0], train_batch)

    def weight_step(self, choice: CellChoice, batch: Batch) -> StepStats:
        """One SGD step of the shared weights on architecture `choice` (only its ops and edges run)."""
        images, labels = batch
        logits = self.model(images, Mixing.from_choice(self.space, choice, self.device))
        loss = F.cross_entropy(logits, labels)
        self.weights.step(loss)
        return step_stats(logits, labels, loss)

    @torch.no_grad()
    def correct(self, choice: CellChoice, batch: Batch) -> Tensor:
        """Number of correct predictions (0-d int64 tensor, on the device) of `choice` on `batch`."""
        images, labels = batch
        logits = self.model(images, Mixing.from_choice(self.space, choice, self.device))
        return (logits.argmax(dim=1) == labels).sum()

    def end_epoch(self, valid: ValidationData) -> None:
        """Score `eval_samples` samples on one batch, validate the best `eval_top` fully, keep the
        best, and `refresh_statistics` for it (scoring left them to the last finalist)."""
        self.model.train()
        candidates = list(dict.fromkeys(self.sample(self.config.eval_samples)))  # distinct, first-drawn order
        batch = valid.batch()
        scores = torch.stack([self.correct(choice, batch) for choice in candidates]).tolist()
        ranked = sorted(range(len(candidates)), key=lambda i: -scores[i])  # stable: ties keep draw order
        finalists = [candidates[i] for i in ranked[: self.config.eval_top]]
        totals = torch.stack([sum(self.correct(c, b) for b in valid.batches()) for c in finalists]).tolist()
        self.best = finalists[totals.index(max(totals))]
        self.refresh_statistics(batch)

    def refresh_statistics(self, batch: Batch) -> None:
        """The shared BatchNorm layers take the reported architecture's statistics on `batch`,
        so that the runner validates it in eval mode with its own."""
        self.model.adopt_batch_statistics(batch[0], Mixing.from_choice(self.space, self.best, self.device))

    def discretize(self) -> ModelSpec:
        return self.space.to_spec(self.best)

    def eval_mixing(self) -> Mixing:
        return Mixing.from_choice(self.space, self.best, self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.weights.state_dict(), "best": choice_to_state(self.best)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weights.load_state_dict(state["weights"])
        self.best = choice_from_state(state["best"])
