"""The NAS-Bench-1Shot1 one-shot model (SPEC §4), mixed by weights passed to `forward`.

Each optimizer decides how to turn its architecture parameters into a `Mixing` (softmax,
perturbed, Gumbel sample, one-hot), so one network serves every optimizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from benchmarks.nasbench1shot1.ops import ConvBnRelu, MixedOp, weighted_sum
from benchmarks.nasbench1shot1.reference import BN_EPS, REFERENCE_BN_MOMENTUM
from benchmarks.nasbench1shot1.spaces import PRIMITIVES, CellChoice, SearchSpace


@dataclass(frozen=True)
class Mixing:
    """Mixing weights of one forward pass, shared by all cells; shapes follow `alpha_shapes`.

    ops: (n, 3) op weights per choice node; output: (1, n + 1) weights of the output's
    candidates (0 = cell input); inputs: one (1, node) tensor per searched choice node.
    op_choice: host-side op index per node; when given, only that op runs at each node (its
    output scaled by its weight, so a straight-through weight still passes gradients).
    """

    ops: Tensor
    output: Tensor
    inputs: tuple[Tensor, ...]
    op_choice: tuple[int, ...] | None = None

    @classmethod
    def from_weights(cls, weights: Sequence[Tensor], op_choice: Sequence[int] | None = None) -> Mixing:
        """Weights in alpha order: [ops, output, *inputs]."""
        ops, output, *inputs = weights
        return cls(ops, output, tuple(inputs), None if op_choice is None else tuple(op_choice))

    @classmethod
    def from_choice(cls, space: SearchSpace, choice: CellChoice, device: torch.device | str = "cpu") -> Mixing:
        """One-hot mixing of a discrete architecture: only the chosen ops and edges count.

        Built on the host and sent in one non-blocking copy (no device synchronisation).
        """
        sizes = [rows * cols for rows, cols in space.alpha_shapes]
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        hot = [node * len(PRIMITIVES) + op for node, op in enumerate(choice.ops)]
        hot += [starts[1] + parent for parent in choice.output_parents]
        for i, node in enumerate(space.choice_input_nodes):
            hot += [starts[2 + i] + parent for parent in choice.parents[node - 1]]
        flat = torch.zeros(sum(sizes))
        flat[hot] = 1.0
        device = torch.device(device)
        if device.type == "cuda":
            flat = flat.pin_memory().to(device, non_blocking=True)
        weights = [chunk.view(shape) for chunk, shape in zip(flat.split(sizes), space.alpha_shapes)]
        return cls(weights[0], weights[1], tuple(weights[2:]), tuple(choice.ops))

    def weights(self) -> list[Tensor]:
        """The weights in alpha order: [ops, output, *inputs]."""
        return [self.ops, self.output, *self.inputs]


class Cell(nn.Module):
    """A cell: (B, c_in, H, W) -> (B, n * channels, H, W).

    The n choice-node projections and the output projection of the cell input are 1x1
    ConvBnRelu blocks of s0; they are stored and run as one conv with 2 * n * channels outputs
    (BatchNorm is per channel, so this equals n + 1 separate blocks).
    """

    def __init__(self, space: SearchSpace, c_in: int, channels: int, bn_momentum: float, partial_channels: int):
        super().__init__()
        n = space.num_choice_nodes
        self.channels = channels
        self.num_nodes = n
        self.fixed_parents = dict(space.fixed_parents)
        self.searched_index = {node: i for i, node in enumerate(space.choice_input_nodes)}
        self.preprocess = ConvBnRelu(c_in, 2 * n * channels, 1, bn_momentum)
        self.mixed_ops = nn.ModuleList(MixedOp(channels, bn_momentum, partial_channels) for _ in range(n))

    def forward(self, s0: Tensor, mixing: Mixing) -> Tensor:
        n, channels = self.num_nodes, self.channels
        *node_inputs, output_projection = self.preprocess(s0).split([channels] * n + [n * channels], dim=1)
        states: list[Tensor] = []
        for i in range(n):
            node = i + 1
            candidates = [node_inputs[i], *states]
            if node in self.fixed_parents:
                parents = self.fixed_parents[node]
                x = candidates[parents[0]]
                for parent in parents[1:]:
                    x = x + candidates[parent]
            else:
                x = weighted_sum(candidates, mixing.inputs[self.searched_index[node]][0])
            choice = None if mixing.op_choice is None else mixing.op_choice[i]
            states.append(self.mixed_ops[i](x, mixing.ops[i], choice))
        state_weights = mixing.output[0, 1:].repeat_interleave(channels).view(1, n * channels, 1, 1)
        return torch.addcmul(output_projection * mixing.output[0, 0], torch.cat(states, dim=1), state_weights)


class OneShotModel(nn.Module):
    """The supernet of a search space: stem, `cells` cells in 3 stacks, classifier.

    Input (B, 3, 32, 32) images, output (B, num_classes) logits. Channels double and the
    resolution halves (MaxPool 2, stride 2, padding 1: 32 -> 17 -> 9) before cells
    cells // 3 and 2 * cells // 3. `bn_momentum` defaults to the reference's quirk (see
    `REFERENCE_BN_MOMENTUM`); `partial_channels` = 4 gives PC-DARTS's partial channels.
    """

    def __init__(
        self,
        space: SearchSpace,
        channels: int = 16,
        cells: int = 9,
        num_classes: int = 10,
        bn_momentum: float = REFERENCE_BN_MOMENTUM,
        partial_channels: int = 1,
    ):
        super().__init__()
        self.space = space
        n = space.num_choice_nodes
        self.reductions = {cells // 3, 2 * cells // 3}
        self.stem = ConvBnRelu(3, channels, 3, bn_momentum)
        self.cells = nn.ModuleList()
        c_prev = c_curr = channels
        for i in range(cells):
            if i in self.reductions:
                c_curr *= 2
            c_in = c_prev if i == 0 else c_prev * n
            self.cells.append(Cell(space, c_in, c_curr, bn_momentum, partial_channels))
            c_prev = c_curr
        self.downsample = nn.MaxPool2d(2, stride=2, padding=1)
        self.postprocess = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c_prev * n, c_prev, 1, bias=False),
            nn.BatchNorm2d(c_prev, eps=BN_EPS, affine=False),
        )
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: Tensor, mixing: Mixing) -> Tensor:
        s = self.stem(x)
        for i, cell in enumerate(self.cells):
            if i in self.reductions:
                s = self.downsample(s)
            s = cell(s, mixing)
        s = self.postprocess(s)
        return self.classifier(s.mean(dim=(2, 3)))

    @torch.no_grad()
    def adopt_batch_statistics(self, images: Tensor, mixing: Mixing) -> None:
        """Set the running statistics of the BatchNorm layers that `mixing` uses to those of one
        train-mode pass over `images` (B, 3, 32, 32) (momentum 1 for that pass), e.g. for the
        architecture about to be validated in eval mode after others shared the layers."""
        layers = [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [layer.momentum for layer in layers]
        was_training = self.training
        self.train()
        try:
            for layer in layers:
                layer.momentum = 1.0
            self(images, mixing)
        finally:
            for layer, momentum in zip(layers, momenta):
                layer.momentum = momentum
            self.train(was_training)
