"""Random search with weight sharing (Li & Talwalkar, 2019): the worked example of an optimizer.

Each step trains the shared weights on one architecture drawn uniformly at random. After each
epoch, `eval_samples` random architectures are scored, the best `eval_top` of them on the whole
search-valid split, and the best of those is reported. Every sample's score is kept
(`epoch_records`: the run's samples.parquet).

Defaults reproduce NAS-Bench-1Shot1's reference (optimizers/random_search_with_weight_sharing:
random_weight_share.py and darts_wrapper_discrete.py; batch 64, gradient clip 0.25, 1,000
samples, top 5):
- the shared weights are trained with one-hot weights passed densely (`discrete=True`), so every
  op runs: the ops not drawn see the batch (BatchNorm statistics) and get a zero gradient, hence
  weight decay and momentum steps (`sampled_ops_only=True` runs only the drawn ops instead);
- each sample is scored on its own `score_batches` (10) search-valid batches, the next ones of
  a stream over search-valid (here: its batches in order, cycled, unaugmented; the reference
  draws them from its shuffled, augmented loader), in eval mode (BatchNorm running statistics,
  i.e. with the reference's momentum quirk those of the last training batch);
  `score_mode="train"` scores with batch statistics instead, and the reported architecture then
  takes its own statistics (`OneShotModel.adopt_batch_statistics`) for the runner's validation;
- all samples are scored, duplicates too, and ranked by accuracy (ties: draw order); the
  finalists are scored on all of search-valid;
- the reference's step budget, int(epochs * 25,000 / 64) = 39,062 steps, ends in epoch 100 after
  99 complete epochs of 391 steps, and only complete epochs are evaluated: with
  `step_budget=True` the search stops after row floor(budget / steps per epoch) (99 of 100).
The learning rate follows the common per-epoch cosine (`reference_lr_schedule=True` gives the
reference's scheduler step before each epoch). See docs/adding-an-optimizer.md and docs/fidelity.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
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
    StopRequest,
    ValidationData,
    out_of_range,
    step_stats,
)
from optimizers.registry import register
from optimizers.weights import WeightTrainer

SCORE_MODES = ("eval", "train")


@dataclass
class RandomWSConfig(SearchConfig):
    """eval_samples: architectures scored per epoch; eval_top: of those, fully validated;
    score_batches: search-valid batches each sample is scored on; score_mode: "eval" (BatchNorm
    running statistics, the reference) or "train" (batch statistics); sampled_ops_only: train
    only the drawn ops (the reference runs all, weighted 0 or 1); step_budget: stop after the
    reference's step budget's complete epochs."""

    batch_size: int = 64
    grad_clip: float = 0.25
    eval_samples: int = 1000
    eval_top: int = 5
    score_batches: int = 10
    score_mode: str = "eval"
    sampled_ops_only: bool = False
    step_budget: bool = True

    def problems(self) -> list[str]:
        problems = super().problems() + out_of_range(
            self, minimum={"eval_samples": 1, "eval_top": 1, "score_batches": 1}
        )
        if self.score_mode not in SCORE_MODES:
            problems.append(f"score_mode={self.score_mode!r} is not one of {', '.join(SCORE_MODES)}")
        if self.warm_start_epochs or not self.output_weights:
            problems.append("warm_start_epochs and output_weights apply to optimizers with architecture parameters")
        return problems


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


def complete_epochs(epochs: int, images_per_epoch: int, batch_size: int, steps_per_epoch: int) -> int:
    """Complete epochs in the reference's budget of int(epochs * images / batch_size) steps
    (random_weight_share.py: B = int(args.epochs * data_size / args.batch_size)); 99 of 100."""
    return int(epochs * images_per_epoch / batch_size) // steps_per_epoch


@register("random-ws")
class RandomWS(SearchOptimizer):
    """Uniformly sampled one-hot architectures train the supernet; the best of many samples is reported."""

    Config = RandomWSConfig

    @classmethod
    def revision_for(cls, config: RandomWSConfig) -> int:
        """One more with `sampled_ops_only`: the weights of the ops that did not run step with a
        zero gradient (weight decay, momentum) since commit 68b6ad2; by default every op runs."""
        return super().revision_for(config) + (1 if config.sampled_ops_only else 0)

    def __init__(self, space: SearchSpace, model: OneShotModel, config: RandomWSConfig):
        super().__init__(space, model, config)
        self.weights = WeightTrainer(model, config)
        self.best = self.sample(1)[0]  # reported until the first end_epoch
        self.records: list[dict[str, Any]] = []
        self.epochs = 0
        self.epoch_steps = self.epoch_images = 0
        """Steps and search-train images of an epoch, counted in the first epoch trained."""
        self.counted = [0, 0]
        self.last_row = -1

    def sample(self, count: int) -> list[CellChoice]:
        """`count` architectures to train or score."""
        return [random_choice(self.space) for _ in range(count)]

    def new_epoch(self, epoch: int, epochs: int) -> None:
        self.weights.set_epoch(epoch, epochs)
        self.epochs = epochs
        self.counted = [0, 0]

    def count_step(self, train_batch: Batch) -> None:
        """Count the epoch's steps and search-train images (for `step_budget`; no device sync)."""
        self.counted[0] += 1
        self.counted[1] += len(train_batch[1])

    def step(self, train_batch: Batch, valid_batch: Batch) -> StepStats:
        self.count_step(train_batch)
        return self.weight_step(self.sample(1)[0], train_batch)

    def mixing_of(self, choice: CellChoice) -> Mixing:
        """One-hot mixing of `choice`: dense (every op runs, weighted 0 or 1: the reference) or,
        with `sampled_ops_only`, only the chosen ops run."""
        mixing = Mixing.from_choice(self.space, choice, self.device)
        return mixing if self.config.sampled_ops_only else replace(mixing, op_choice=None)

    def weight_step(self, choice: CellChoice, batch: Batch) -> StepStats:
        """One SGD step of the shared weights on architecture `choice`."""
        images, labels = batch
        logits = self.model(images, self.mixing_of(choice))
        loss = F.cross_entropy(logits, labels)
        self.weights.step(loss)
        return step_stats(logits, labels, loss)

    @torch.no_grad()
    def correct(self, choice: CellChoice, batch: Batch) -> Tensor:
        """Number of correct predictions (0-d int64 tensor, on the device) of `choice` on `batch`."""
        images, labels = batch
        logits = self.model(images, self.mixing_of(choice))
        return (logits.argmax(dim=1) == labels).sum()

    def end_epoch(self, valid: ValidationData) -> None:
        """Score `eval_samples` samples, validate the best `eval_top` fully, keep the best."""
        if not self.epoch_steps:
            self.epoch_steps, self.epoch_images = self.counted
        self.select(self.sample(self.config.eval_samples), valid, self.config.score_batches)

    def select(self, candidates: list[CellChoice], valid: ValidationData, per_sample: int) -> None:
        """Score candidate i on the batches i * per_sample ... (i + 1) * per_sample - 1 of
        search-valid (in order, cycled), rank by accuracy (stable: ties keep draw order), score the
        best `eval_top` on all of search-valid, keep the best of those; record every score."""
        batches = list(valid.batches())
        train_mode = self.config.score_mode == "train"
        self.model.train(train_mode)
        try:
            correct, seen = [], []
            for i, choice in enumerate(candidates):
                chosen = [batches[(i * per_sample + j) % len(batches)] for j in range(per_sample)]
                correct.append(sum(self.correct(choice, batch) for batch in chosen))
                seen.append(sum(len(batch[1]) for batch in chosen))
            scores = [c / n for c, n in zip(torch.stack(correct).tolist(), seen, strict=True)]
            ranked = sorted(range(len(candidates)), key=lambda i: -scores[i])
            finalists = ranked[: self.config.eval_top]
            total = sum(len(batch[1]) for batch in batches)
            finals = [
                c / total
                for c in torch.stack([sum(self.correct(candidates[i], b) for b in batches) for i in finalists]).tolist()
            ]
        finally:
            self.model.train()
        self.best = candidates[finalists[finals.index(max(finals))]]
        hashes: dict[CellChoice, str] = {}

        def record(stage: str, i: int, score: float, count: int) -> dict[str, Any]:
            if candidates[i] not in hashes:
                hashes[candidates[i]] = self.space.to_spec(candidates[i]).hash()
            return {"stage": stage, "sample": i, "arch_hash": hashes[candidates[i]], "score": score, "batches": count}

        self.records = [record("sample", i, scores[i], per_sample) for i in range(len(candidates))]
        self.records += [record("finalist", i, s, len(batches)) for i, s in zip(finalists, finals, strict=True)]
        if train_mode:
            self.refresh_statistics(batches[0])

    def refresh_statistics(self, batch: Batch) -> None:
        """The shared BatchNorm layers take the reported architecture's statistics on `batch`,
        so that the runner validates it in eval mode with its own (score_mode="train")."""
        self.model.adopt_batch_statistics(batch[0], self.mixing_of(self.best))

    def epoch_records(self) -> list[dict[str, Any]]:
        """The last `end_epoch`'s scores: stage ("sample" or "finalist"), sample (draw index),
        arch_hash, score (accuracy on its batches), batches (how many)."""
        records, self.records = self.records, []
        return records

    def observe(self, row: dict[str, Any]) -> None:
        self.last_row = int(row["epoch"])

    def should_stop(self) -> StopRequest | None:
        if not self.config.step_budget or not self.epoch_steps or not self.epochs:
            return None
        last = complete_epochs(self.epochs, self.epoch_images, self.config.batch_size, self.epoch_steps)
        if self.last_row >= last and last < self.epochs:
            return StopRequest(
                f"the reference's step budget of {self.epochs} x {self.epoch_images} / {self.config.batch_size} "
                f"steps holds {last} complete epochs (step_budget=false runs all {self.epochs})"
            )
        return None

    def discretize(self) -> ModelSpec:
        return self.space.to_spec(self.best)

    def eval_mixing(self) -> Mixing:
        return self.mixing_of(self.best)

    def state_dict(self) -> dict[str, Any]:
        return {
            "weights": self.weights.state_dict(),
            "best": choice_to_state(self.best),
            "epoch_steps": self.epoch_steps,
            "epoch_images": self.epoch_images,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weights.load_state_dict(state["weights"])
        self.best = choice_from_state(state["best"])
        self.epoch_steps, self.epoch_images = state["epoch_steps"], state["epoch_images"]
