"""ENAS (Pham et al., 2018) on the NAS-Bench-1Shot1 spaces: an LSTM controller trained by REINFORCE.

Random search with weight sharing (`RandomWS`) with a learned sampler: the shared weights train
on architectures sampled from the controller, and the end of each epoch reports the best of
`eval_samples` controller samples (one valid batch each, then the best `eval_top` on the whole
split). Each step is one controller step on the valid batch, then one weight step on the train
batch. No architecture parameters: no Hessian.

Choices, and where they differ from the NAS-Bench-1Shot1 reference (optimizers/enas):
- the reward is computed with the network in train mode (BatchNorm batch statistics, as every
  other score here): with the shared BatchNorm layers, eval mode would score an architecture
  with the running statistics of whichever architecture used each layer last (with the
  reference's BatchNorm momentum, essentially its last batch). The reference uses eval mode;
- the reward is the accuracy in percent (0..100), as the reference computes it, plus
  `entropy_weight` times the entropy of the sampled decisions; the moving-average baseline
  starts at 0 and is updated before the advantage is taken, as in ENAS;
- controller and weight steps alternate every step (the reference trains the weights for an
  epoch, then the controller for 300 steps); the weight step's architecture is drawn in the same
  controller pass as the scored one (one host transfer per step), so it comes from the
  controller just before this step's update;
- logits are shaped as in ENAS: c * tanh(logits / temperature), c = 2.5 for parents and
  2.5 / 5 for ops; parents are sampled without replacement, and their log-probabilities are
  summed (the reference averages them); the reference's fixed op-logit bias is left out;
- the controller's Adam uses the reference's betas (0.1, 0.999) and eps 1e-3 (SPEC gives the lr);
- the weights use the common weight decay 3e-4 (the reference's ENAS child uses 1e-4);
- until the first `end_epoch`, the reported architecture is a controller sample drawn at
  construction (deterministic for a seed; no RNG is drawn when it is reported).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.nasbench1shot1 import PRIMITIVES, CellChoice, OneShotModel, SearchSpace
from optimizers.base import Batch, StepStats, out_of_range
from optimizers.gdas import gumbel_noise
from optimizers.random_ws import RandomWS, RandomWSConfig
from optimizers.registry import register

MASKED_LOGIT = -1e9
"""Logit of a parent that cannot be chosen (probability exactly 0, entropy term exactly 0)."""
OP, PARENT = "op", "parent"


@dataclass
class ENASConfig(RandomWSConfig):
    controller_hidden: int = 64
    controller_lr: float = 3.5e-4
    controller_beta1: float = 0.1
    controller_beta2: float = 0.999
    controller_eps: float = 1e-3
    controller_temperature: float = 5.0
    controller_tanh_constant: float = 2.5
    controller_op_tanh_reduce: float = 5.0
    entropy_weight: float = 1e-4
    baseline_decay: float = 0.99

    def problems(self) -> list[str]:
        return super().problems() + out_of_range(
            self,
            minimum={"controller_hidden": 1, "controller_lr": 0},
            positive=(
                "controller_eps",
                "controller_temperature",
                "controller_tanh_constant",
                "controller_op_tanh_reduce",
            ),
            fractions=("controller_beta1", "controller_beta2", "baseline_decay"),
        )


class Controller(nn.Module):
    """LSTM policy over the decisions of a space, in order: for each choice node 1..n, its searched
    parents (one decision each, without replacement) and then its op; last, the output's parents.

    Nodes with fixed parents make no parent decisions. Each decision feeds the embedding of its
    outcome (one embedding table per decision type) to the next LSTM step.
    """

    def __init__(self, space: SearchSpace, config: ENASConfig):
        super().__init__()
        n = space.num_choice_nodes
        self.space = space
        self.decisions: list[tuple[int, str]] = []
        for node in range(1, n + 1):
            if node not in space.fixed_parents:
                self.decisions += [(node, PARENT)] * space.num_parents[node - 1]
            self.decisions.append((node, OP))
        self.decisions += [(n + 1, PARENT)] * space.num_output_parents
        hidden = config.controller_hidden
        self.start = nn.Parameter(torch.empty(1, hidden))
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.op_embedding = nn.Embedding(len(PRIMITIVES), hidden)
        self.parent_embedding = nn.Embedding(n + 1, hidden)
        self.op_head = nn.Linear(hidden, len(PRIMITIVES))
        self.parent_head = nn.Linear(hidden, n + 1)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -0.1, 0.1)
        self.temperature = config.controller_temperature
        self.parent_scale = config.controller_tanh_constant
        self.op_scale = config.controller_tanh_constant / config.controller_op_tanh_reduce

    def forward(self, count: int) -> tuple[Tensor, Tensor, Tensor]:
        """Sample `count` architectures without a host sync (Gumbel-max; `torch.multinomial` syncs).

        Returns the decisions (count, D) int64 (D = len(self.decisions)), and the log-probability
        and the entropy of each sample, summed over its decisions, (count,) each.
        """
        n = self.space.num_choice_nodes
        h = c = self.start.new_zeros(count, self.start.shape[1])
        x = self.start.expand(count, -1)
        positions = torch.arange(n + 1, device=x.device)
        taken = torch.zeros(count, n + 1, dtype=torch.bool, device=x.device)
        outcomes, log_prob, entropy = [], 0.0, 0.0
        for node, kind in self.decisions:
            h, c = self.lstm(x, (h, c))
            if kind == OP:
                logits = self.op_scale * torch.tanh(self.op_head(h) / self.temperature)
            else:
                logits = self.parent_scale * torch.tanh(self.parent_head(h) / self.temperature)
                logits = logits.masked_fill(taken | (positions >= node), MASKED_LOGIT)
            log_probs = F.log_softmax(logits, dim=-1)
            outcome = (log_probs.detach() + gumbel_noise(log_probs)).argmax(dim=-1)  # Gumbel-max: no sync
            log_prob = log_prob + log_probs.gather(1, outcome[:, None]).squeeze(1)
            entropy = entropy - (log_probs.exp() * log_probs).sum(dim=-1)
            outcomes.append(outcome)
            if kind == OP:
                taken = torch.zeros_like(taken)  # a node's parents come just before its op
                x = self.op_embedding(outcome)
            else:
                taken = taken | F.one_hot(outcome, n + 1).bool()
                x = self.parent_embedding(outcome)
        return torch.stack(outcomes, dim=1), log_prob, entropy

    def decode(self, decisions: Tensor) -> list[CellChoice]:
        """The architectures of sampled decisions (count, D): one device-to-host transfer."""
        n = self.space.num_choice_nodes
        choices = []
        for row in decisions.tolist():
            ops = [0] * n
            parents: dict[int, list[int]] = {node: list(fixed) for node, fixed in self.space.fixed_parents.items()}
            for (node, kind), outcome in zip(self.decisions, row, strict=True):
                if kind == OP:
                    ops[node - 1] = outcome
                else:
                    parents.setdefault(node, []).append(outcome)
            choices.append(
                CellChoice(
                    tuple(ops),
                    tuple(tuple(sorted(parents[node])) for node in range(1, n + 1)),
                    tuple(sorted(parents[n + 1])),
                )
            )
        return choices


@register("enas")
class ENAS(RandomWS):
    """Shared weights trained on controller samples; the controller trained by REINFORCE."""

    Config = ENASConfig

    def __init__(self, space: SearchSpace, model: OneShotModel, config: ENASConfig):
        device = next(model.parameters()).device
        self.controller = Controller(space, config).to(device)
        self.controller_optimizer = torch.optim.Adam(
            self.controller.parameters(),
            lr=config.controller_lr,
            betas=(config.controller_beta1, config.controller_beta2),
            eps=config.controller_eps,
        )
        self.baseline = torch.zeros((), device=device)
        super().__init__(space, model, config)  # draws the initial architecture from the controller

    def sample(self, count: int) -> list[CellChoice]:
        with torch.no_grad():
            decisions, _, _ = self.controller(count)
        return self.controller.decode(decisions)

    def step(self, train_batch: Batch, valid_batch: Batch) -> StepStats:
        decisions, log_prob, entropy = self.controller(2)
        scored, trained = self.controller.decode(decisions)
        accuracy = 100.0 * self.correct(scored, valid_batch) / len(valid_batch[1])
        self.reinforce(log_prob[:1], entropy[:1], accuracy[None])
        return self.weight_step(trained, train_batch)

    def reinforce(self, log_prob: Tensor, entropy: Tensor, reward: Tensor) -> None:
        """One controller step on samples with log-probabilities, entropies and rewards, (count,) each.

        reward + entropy_weight * entropy is compared with the moving-average baseline (updated
        first, with the batch mean); loss = -mean(log_prob * advantage). No host sync.
        """
        reward = reward + self.config.entropy_weight * entropy.detach()
        self.baseline = torch.lerp(self.baseline, reward.mean(), 1.0 - self.config.baseline_decay)
        loss = -(log_prob * (reward - self.baseline)).mean()
        self.controller_optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=list(self.controller.parameters()))
        self.controller_optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "controller": self.controller.state_dict(),
            "controller_optimizer": self.controller_optimizer.state_dict(),
            "baseline": self.baseline.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.controller.load_state_dict(state["controller"])
        self.controller_optimizer.load_state_dict(state["controller_optimizer"])
        self.baseline = state["baseline"].to(self.baseline.device)
