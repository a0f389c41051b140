"""ENAS (Pham et al., 2018) on the NAS-Bench-1Shot1 spaces: an LSTM controller trained by REINFORCE.

Defaults reproduce NAS-Bench-1Shot1's reference (optimizers/enas: enas.py, enas_child.py,
micro_controller.py, data.py), run unchanged by SmoothDARTS:
- data: shared weights trained on CIFAR-10 training images 0-44,999, controller rewards on the
  last 5,000 (`train_portion=0.9`; the runner's search-valid is that part), batch 64,
  normalisation mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010)
  (`normalization="enas"`);
- an epoch: every search-train batch (704) is one weight step on a controller sample (SGD,
  momentum 0.9, weight decay 1e-4, gradient clip 0.25, one-hot weights passed densely so every
  op runs, as random WS); then, in `end_epoch`, `controller_steps` (300) controller steps, each
  on the next search-valid batch; then `eval_samples` (1,000) controller samples are scored,
  each on its own `score_batches` (1) search-valid batch, and the best `eval_top` (5) on all of
  search-valid; the best of those is reported. Every score is kept (`epoch_records`);
- the weight learning rate: the reference's CosineAnnealingLR(T_max=epochs) is stepped once per
  *batch*, so batch k (counted over the run, from 0) uses 0.001 + 0.024 (1 + cos(pi k / epochs)) / 2,
  cycling every 2 x epochs batches (`per_batch_lr=False`: the common per-epoch cosine);
- the controller: an LSTM cell (hidden 64). Two first steps on the embedding of token 0 give
  zero anchors for nodes 0 and 1 and their attention keys w_attn_1(h). Then for each node
  L = 2 .. n and the output (L = n + 1): a step on token 0's embedding, attention logits
  v . tanh(w_attn_1(anchor_j) + w_attn_2(h)) over the L earlier nodes, then / temperature (5),
  2.5 tanh(.), and the node's parents sampled without replacement (space 1's node 2 takes both
  of its two candidates, as in the reference); a step on the anchor of the last parent drawn;
  op logits (w_soft(h) + b) / 5, 0.5 tanh(.), + (0.25, 0.25, -0.25) fixed, b learnable from
  (10, 10, 0); the op sampled; it is the op of node L - 1 (so node 1's op is decided with node
  2's parents and node n's with the output's); a step on the op's embedding gives node L's
  anchor. The log-probability of a parent decision is the mean of its parents' log-probabilities
  under the full softmax; entropies (of each decision's softmax) are summed;
- REINFORCE: reward = accuracy in percent on the batch + 1e-4 x entropy, baseline b <- 0.99 b +
  0.01 reward (from 0, before the advantage), loss = -log p x (reward - b); Adam lr 3.5e-4,
  betas (0.1, 0.999), eps 1e-3;
- rewards and scores with the network in eval mode (`score_mode`, as random WS).
Where it differs from the reference:
- the reference scores the 1,000 samples and their top 5 on the CIFAR-10 *test* set (a leak; and
  the call that would report the result is missing from the published code); here they are
  scored on search-valid (the reward split). The test set is not part of the harness's data;
- controller rewards and sample scores use the search-valid batches in order, unaugmented,
  cycled (the controller's position continues across epochs); the reference draws them from
  shuffled, augmented loaders;
- samples are drawn with Gumbel-max / Gumbel-top-k, the same distributions as its multinomial
  draws, vectorised;
- until the first `end_epoch`, the reported architecture is a controller sample drawn at
  construction (deterministic for a seed; no RNG is drawn when it is reported).
No architecture parameters: no Hessian. See docs/fidelity.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.nasbench1shot1 import PRIMITIVES, CellChoice, OneShotModel, SearchSpace
from optimizers.base import Batch, StepStats, ValidationData, out_of_range
from optimizers.gdas import gumbel_noise
from optimizers.random_ws import RandomWS, RandomWSConfig
from optimizers.registry import register
from optimizers.weights import cosine_lr

OP, PARENT = "op", "parent"
OP_BIAS_INIT = (10.0, 10.0, 0.0)
"""Initial value of the controller's learnable op-logit bias (micro_controller.py `b_soft`)."""
OP_BIAS_FIXED = (0.25, 0.25, -0.25)
"""The controller's fixed op-logit bias (micro_controller.py `b_soft_no_learn`)."""


@dataclass
class ENASConfig(RandomWSConfig):
    """controller_*: the LSTM controller and its Adam; entropy_weight, baseline_decay: REINFORCE;
    controller_steps: controller steps per epoch; per_batch_lr: the reference's cosine stepped per
    batch (period 2 x epochs batches) instead of per epoch."""

    weight_decay: float = 1e-4
    score_batches: int = 1
    step_budget: bool = False
    train_portion: float = 0.9
    normalization: str = "enas"
    controller_hidden: int = 64
    controller_lr: float = 3.5e-4
    controller_beta1: float = 0.1
    controller_beta2: float = 0.999
    controller_eps: float = 1e-3
    controller_temperature: float = 5.0
    controller_tanh_constant: float = 2.5
    controller_op_tanh_reduce: float = 5.0
    controller_steps: int = 300
    entropy_weight: float = 1e-4
    baseline_decay: float = 0.99
    per_batch_lr: bool = True

    def problems(self) -> list[str]:
        return super().problems() + out_of_range(
            self,
            minimum={"controller_hidden": 1, "controller_lr": 0, "controller_steps": 0},
            positive=(
                "controller_eps",
                "controller_temperature",
                "controller_tanh_constant",
                "controller_op_tanh_reduce",
            ),
            fractions=("controller_beta1", "controller_beta2", "baseline_decay"),
        )


class Controller(nn.Module):
    """The reference's attention controller (see the module docstring), vectorised over samples.

    Decisions, in order, for L = 2 .. n + 1: node L's parents (one column per parent, in draw
    order), then the op of node L - 1.
    """

    def __init__(self, space: SearchSpace, config: ENASConfig):
        super().__init__()
        n, hidden, ops = space.num_choice_nodes, config.controller_hidden, len(PRIMITIVES)
        self.space = space
        self.parents_per_layer = [space.num_parents[layer - 1] for layer in range(2, n + 1)] + [
            space.num_output_parents
        ]
        self.decisions: list[tuple[int, str]] = []
        for layer, k in zip(range(2, n + 2), self.parents_per_layer, strict=True):
            self.decisions += [(layer, PARENT)] * k + [(layer - 1, OP)]
        self.encoder = nn.Embedding(ops + 1, hidden)
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.w_soft = nn.Linear(hidden, ops, bias=False)
        self.w_attn_1 = nn.Linear(hidden, hidden, bias=False)
        self.w_attn_2 = nn.Linear(hidden, hidden, bias=False)
        self.v_attn = nn.Linear(hidden, 1, bias=False)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -0.1, 0.1)
        self.b_soft = nn.Parameter(torch.tensor([OP_BIAS_INIT]))
        self.register_buffer("b_soft_fixed", torch.tensor([OP_BIAS_FIXED]))
        self.temperature = config.controller_temperature
        self.parent_scale = config.controller_tanh_constant
        self.op_scale = config.controller_tanh_constant / config.controller_op_tanh_reduce

    def forward(self, count: int) -> tuple[Tensor, Tensor, Tensor]:
        """Sample `count` architectures without a host sync (Gumbel-max; `torch.multinomial` syncs).

        Returns the decisions (count, D) int64 (D = len(self.decisions)), and the log-probability
        and the entropy of each sample, summed over its decisions, (count,) each.
        """
        token0 = torch.zeros(count, dtype=torch.long, device=self.b_soft.device)
        rows = torch.arange(count, device=token0.device)
        x = self.encoder(token0)
        h = c = x.new_zeros(count, self.lstm.hidden_size)
        anchors, keys = [], []
        for _ in range(2):
            h, c = self.lstm(x, (h, c))
            anchors.append(torch.zeros_like(h))
            keys.append(self.w_attn_1(h))
        outcomes, log_prob, entropy = [], 0.0, 0.0
        for k in self.parents_per_layer:
            h, c = self.lstm(x, (h, c))
            query = torch.tanh(torch.stack(keys, dim=1) + self.w_attn_2(h)[:, None])
            logits = self.parent_scale * torch.tanh(self.v_attn(query).squeeze(-1) / self.temperature)
            log_probs = F.log_softmax(logits, dim=-1)
            picks = (log_probs.detach() + gumbel_noise(log_probs)).topk(k, dim=-1).indices  # draw order
            log_prob = log_prob + log_probs.gather(1, picks).mean(dim=1)
            entropy = entropy - (log_probs.exp() * log_probs).sum(dim=-1)
            outcomes.append(picks)
            h, c = self.lstm(torch.stack(anchors, dim=1)[rows, picks[:, -1]], (h, c))
            logits = self.op_scale * torch.tanh((self.w_soft(h) + self.b_soft) / self.temperature) + self.b_soft_fixed
            log_probs = F.log_softmax(logits, dim=-1)
            op = (log_probs.detach() + gumbel_noise(log_probs)).argmax(dim=-1)
            log_prob = log_prob + log_probs.gather(1, op[:, None]).squeeze(1)
            entropy = entropy - (log_probs.exp() * log_probs).sum(dim=-1)
            outcomes.append(op[:, None])
            h, c = self.lstm(self.encoder(op + 1), (h, c))
            anchors.append(h)
            keys.append(self.w_attn_1(h))
            x = self.encoder(token0)
        return torch.cat(outcomes, dim=1), log_prob, entropy

    def decode(self, decisions: Tensor) -> list[CellChoice]:
        """The architectures of sampled decisions (count, D): one device-to-host transfer."""
        n = self.space.num_choice_nodes
        choices = []
        for row in decisions.tolist():
            ops = [0] * n
            parents: dict[int, list[int]] = {1: list(self.space.fixed_parents[1])}
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
        self.global_step = 0
        """Weight steps so far (the per-batch learning rate's position)."""
        self.reward_position = 0
        """Search-valid batches the controller has consumed so far."""
        super().__init__(space, model, config)  # draws the initial architecture from the controller

    def sample(self, count: int) -> list[CellChoice]:
        with torch.no_grad():
            decisions, _, _ = self.controller(count)
        return self.controller.decode(decisions)

    def batch_lr(self, step: int) -> float:
        """The weight learning rate of weight step `step` (over the run, from 0), per_batch_lr."""
        return cosine_lr(step, max(self.epochs, 1), self.config.weight_lr, self.config.weight_lr_min)

    def step(self, train_batch: Batch, valid_batch: Batch) -> StepStats:
        """One weight step on a controller sample (the valid batch is not used here)."""
        if self.config.per_batch_lr:
            for group in self.weights.optimizer.param_groups:
                group["lr"] = self.batch_lr(self.global_step)
        self.global_step += 1
        self.count_step(train_batch)
        return self.weight_step(self.sample(1)[0], train_batch)

    def end_epoch(self, valid: ValidationData) -> None:
        """`controller_steps` controller steps, then the samples' selection (`RandomWS.select`)."""
        batches = list(valid.batches())
        self.model.train(self.config.score_mode == "train")
        try:
            for _ in range(self.config.controller_steps):
                batch = batches[self.reward_position % len(batches)]
                self.reward_position += 1
                decisions, log_prob, entropy = self.controller(1)
                (choice,) = self.controller.decode(decisions)
                accuracy = 100.0 * self.correct(choice, batch) / len(batch[1])
                self.reinforce(log_prob, entropy, accuracy[None])
        finally:
            self.model.train()
        super().end_epoch(valid)

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
            "global_step": self.global_step,
            "reward_position": self.reward_position,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.controller.load_state_dict(state["controller"])
        self.controller_optimizer.load_state_dict(state["controller_optimizer"])
        self.baseline = state["baseline"].to(self.baseline.device)
        self.global_step, self.reward_position = state["global_step"], state["reward_position"]
