"""NASP (Yao et al., AAAI 2020) on the one-shot model, by default as the reference code runs it.

The reference is NAS-Bench-1Shot1's optimizers/nasp (model_search.py, architect.py,
train_search.py), which SmoothDARTS runs unchanged. Default, `mixing="reference"`:
- every alpha (ops, output, inputs) starts at `alpha_init_mean` (0.5) + `alpha_init_std`
  (1e-3) * N(0, 1) (`NASPNetwork._initialize_alphas`, same draw order as DARTS here);
- `binarization()` overwrites the op alphas with the one-hot of their argmax, and the network's
  forward then applies its usual softmax to that one-hot: op weights softmax(one-hot) =
  (e, 1, 1) / (e + 2) = 0.576 / 0.212 / 0.212, so all three ops run. The gradient is taken at
  the one-hot, through that softmax, and applied to the continuous alphas (`restore()` runs
  before Adam's step). Input and output alphas are softmaxed as in DARTS. This mixing is used in
  the architecture step, the weight step, validation (`infer`) and the Hessian;
- one step: the architecture step (Adam, search-valid batch), the weight step (SGD, binarized at
  the alphas just updated), then every alpha is clipped to [0, 1] (`clip()`: Hardtanh(0, 1)),
  also during warm-start epochs.
`mixing="one-hot"` is NASP as its paper describes it: exact one-hot op weights with a
straight-through (identity) gradient to the op alphas, only the chosen op runs (one host
transfer per forward pass, so not capturable). Initialisation, clipping and step order as above.

Reference option `epsilon_greedy` (the `e_greedy` argument of `binarization`, 0 in every call of
the reference): with this probability, one draw per training binarization (architecture step and
weight step), every node takes a uniformly random op instead of its argmax. Validation and the
Hessian always binarize at the argmax. Draws use torch's CPU generator (no device sync).

The reported architecture is the benchmark's discretization of the continuous alphas (argmax of
the op alphas, ties to the first as in the reference). See docs/fidelity.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.nasbench1shot1 import Mixing, OneShotModel, SearchSpace
from optimizers.base import Batch, softmax_mixing
from optimizers.darts import DARTS, DARTSConfig
from optimizers.registry import register

NASP_MIXINGS = ("reference", "one-hot")


def binarizer(alphas: Sequence[Tensor]) -> Callable[[Sequence[Tensor]], Mixing]:
    """Fix the op choice argmax(op alphas) at `alphas` and return alphas -> Mixing with it.

    The mixing has one-hot op weights that pass their gradient straight through to the op
    alphas (onehot + (a - a.detach()), exactly one-hot in value), `op_choice` set so only the
    chosen op runs, and softmax input/output weights. Costs one device-to-host transfer.
    """
    index = alphas[0].detach().argmax(dim=-1)
    op_choice = index.tolist()
    one_hot = F.one_hot(index, alphas[0].shape[-1]).to(alphas[0].dtype)

    def mixing(alphas: Sequence[Tensor]) -> Mixing:
        ops, *edges = alphas
        weights = [one_hot + (ops - ops.detach()), *(F.softmax(edge, dim=-1) for edge in edges)]
        return Mixing.from_weights(weights, op_choice)

    return mixing


def argmax_one_hot(values: Tensor) -> Tensor:
    """One-hot of each row's argmax (the first on ties, like numpy's), in `values`' dtype,
    without a host sync. (n, k) -> (n, k)."""
    index = values.argmax(dim=-1, keepdim=True)
    return (torch.arange(values.shape[-1], device=values.device) == index).to(values.dtype)


@dataclass
class NASPConfig(DARTSConfig):
    """mixing: "reference" (softmax of the one-hot, all ops run) or "one-hot" (the paper's);
    alpha_init_mean: every alpha starts at this plus alpha_init_std * N(0, 1);
    epsilon_greedy: probability of a random op choice per training binarization."""

    mixing: str = "reference"
    alpha_init_mean: float = 0.5
    epsilon_greedy: float = 0.0

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.mixing not in NASP_MIXINGS:
            problems.append(f"mixing={self.mixing!r} is not one of {', '.join(NASP_MIXINGS)}")
        if not 0 <= self.epsilon_greedy <= 1:
            problems.append(f"epsilon_greedy={self.epsilon_greedy!r} must be in [0, 1]")
        if self.unrolled:
            problems.append("unrolled=True: NASP has no second-order step (nor has the reference)")
        return problems


@register("nasp")
class NASP(DARTS):
    """DARTS on binarized op weights; every alpha starts near 0.5 and is clipped to [0, 1]
    after each weight step."""

    Config = NASPConfig

    @classmethod
    def revision_for(cls, config: NASPConfig) -> int:
        """One more with `mixing="one-hot"`: the weights of the ops that did not run step with a
        zero gradient (weight decay, momentum) since commit 68b6ad2; the reference mixing runs
        every op."""
        return super().revision_for(config) + (1 if config.mixing == "one-hot" else 0)

    def __init__(self, space: SearchSpace, model: OneShotModel, config: NASPConfig):
        super().__init__(space, model, config)
        with torch.no_grad():
            for alpha in self.alphas:
                alpha.add_(config.alpha_init_mean)

    @property
    def capturable(self) -> bool:
        """The reference mixing is computed on the device; one-hot mixing and epsilon-greedy
        choices are decided on the host."""
        return self.config.mixing == "reference" and self.config.epsilon_greedy == 0

    def op_one_hot(self, alphas: Sequence[Tensor], explore: bool = False) -> Tensor:
        """The binarized op alphas (detached): one-hot at the argmax, or with `explore` and
        probability `epsilon_greedy` at uniformly random ops."""
        ops = alphas[0].detach()
        epsilon = self.config.epsilon_greedy
        if explore and epsilon > 0 and float(torch.rand(())) < epsilon:
            index = torch.randint(ops.shape[-1], (ops.shape[0], 1)).to(ops.device)
            return (torch.arange(ops.shape[-1], device=ops.device) == index).to(ops.dtype)
        return argmax_one_hot(ops)

    def binarized(self, one_hot: Tensor) -> Callable[[Sequence[Tensor]], Mixing]:
        """alphas -> Mixing with the op weights binarized at `one_hot` (gradients at the one-hot,
        to the op alphas) and softmax edges."""
        if self.config.mixing == "reference":

            def mixing(alphas: Sequence[Tensor]) -> Mixing:
                ops, *edges = alphas
                return self.output_option(softmax_mixing([one_hot + (ops - ops.detach()), *edges]))

        else:
            op_choice = one_hot.argmax(dim=-1).tolist()

            def mixing(alphas: Sequence[Tensor]) -> Mixing:
                ops, *edges = alphas
                weights = [one_hot + (ops - ops.detach()), *(F.softmax(edge, dim=-1) for edge in edges)]
                return self.output_option(Mixing.from_weights(weights, op_choice))

        return mixing

    def mixing(self, alphas: Sequence[Tensor]) -> Mixing:
        """Binarized at the argmax of `alphas` (validation, and the default elsewhere)."""
        return self.binarized(self.op_one_hot(alphas))(alphas)

    def step(self, train_batch: Batch, valid_batch: Batch):
        stats = super().step(train_batch, valid_batch)
        with torch.no_grad():
            for alpha in self.alphas:
                alpha.clamp_(0.0, 1.0)
        return stats

    def arch_step(self, valid_batch: Batch, train_batch: Batch) -> None:
        images, labels = valid_batch
        mixing = self.binarized(self.op_one_hot(self.alphas, explore=True))
        loss = F.cross_entropy(self.model(images, mixing(self.alphas)), labels)
        self.set_arch_gradients(torch.autograd.grad(loss, self.alphas))
        self.arch_optimizer.step()

    def weight_mixing(self, train_batch: Batch) -> Mixing:
        alphas = [alpha.detach() for alpha in self.alphas]
        return self.binarized(self.op_one_hot(alphas, explore=True))(alphas)

    def architecture_objective(self, batch: Batch) -> Callable[[Sequence[Tensor]], Tensor]:
        """The binarization is fixed at the current alphas, so the objective is smooth in the
        alphas (the reference's Hessian is taken at the binarized op alphas, through the softmax)."""
        images, labels = batch
        mixing = self.binarized(self.op_one_hot(self.alphas))
        return lambda alphas: F.cross_entropy(self.model(images, mixing(alphas)), labels)
