"""The NAS-Bench-1Shot1 one-shot model (SPEC §4), mixed by weights passed to `forward`.

Each optimizer decides how to turn its architecture parameters into a `Mixing` (softmax,
perturbed, Gumbel sample, one-hot), so one network serves every optimizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from benchmarks.nasbench1shot1.batchnorm import BatchNorm2d
from benchmarks.nasbench1shot1.coefficients import CellCoefficients, CoefficientLayout
from benchmarks.nasbench1shot1.conv import Conv2d
from benchmarks.nasbench1shot1.groups import GroupLayout, GroupStack
from benchmarks.nasbench1shot1.ops import (
    ConvBnRelu,
    NodeOps,
    channel_shuffle,
    drop_path_mask,
    max_pool,
    weighted_sum,
)
from benchmarks.nasbench1shot1.reference import BN_EPS, REFERENCE_BN_MOMENTUM
from benchmarks.nasbench1shot1.spaces import PRIMITIVES, CellChoice, SearchSpace


@dataclass(frozen=True)
class Mixing:
    """Mixing weights of one forward pass, shapes following `alpha_shapes`: shared by all cells,
    or one per cell (`OneShotModel.forward` takes a sequence, cell i mixed by the i-th).

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
    (BatchNorm is per channel, so this equals n + 1 separate blocks). The nodes' ops are a
    `NodeOps`. Dense mixing without partial channels runs the fused path (`CellCoefficients`:
    each node's input and the cell output are one matrix product over the channel groups, stored
    group-major: `groups`); a host-side op choice or partial channels run node by node.
    """

    def __init__(self, space: SearchSpace, c_in: int, channels: int, bn_momentum: float, partial_channels: int):
        super().__init__()
        n = space.num_choice_nodes
        if channels % partial_channels:
            raise ValueError(f"{channels} channels cannot be split into {partial_channels} partial-channel groups")
        self.channels = channels
        self.num_nodes = n
        self.partial_channels = partial_channels
        self.fixed_parents = dict(space.fixed_parents)
        self.searched_index = {node: i for i, node in enumerate(space.choice_input_nodes)}
        self.preprocess = ConvBnRelu(c_in, 2 * n * channels, 1, bn_momentum)
        self.nodes = NodeOps(n, channels // partial_channels, bn_momentum)

    def forward(
        self, s0: Tensor, mixing: Mixing, coefficients: CellCoefficients | None = None, drop_path_prob: float = 0.0
    ) -> Tensor:
        """s0 (B, c_in, H, W) -> (B, n * channels, H, W). coefficients: this cell's rows for the
        fused path (from `OneShotModel`); drop_path_prob > 0 multiplies each node's output by a
        per-sample Bernoulli(1 - p) / (1 - p) mask (train mode)."""
        pre = self.preprocess(s0)
        if coefficients is None:
            return self._node_by_node(pre, mixing, drop_path_prob)
        n = self.num_nodes
        layout = GroupLayout.of(pre, self.channels)
        kernels = self.nodes.fused_kernels()
        to_nodes, to_output = layout.split_groups(pre, n)  # the projections
        stack = GroupStack(5 * n)
        stack.append([to_nodes])  # the groups so far, (G, B, *inner), group-major
        for i in range(n):
            rows = coefficients.nodes[i]
            x = layout.as_images(stack.group(i) if rows is None else stack.sums(rows).squeeze(0))
            pooled, convolved = max_pool(x), self.nodes.convolutions(x, i, kernels[i])
            if drop_path_prob > 0:
                mask = drop_path_mask(x, drop_path_prob)
                pooled, convolved = pooled * mask, convolved * mask
            last = [to_output] if i == n - 1 else []
            stack.append([layout.as_stored(pooled)[None], layout.as_groups(convolved, 2), *last])
        return layout.concatenated(stack.sums(coefficients.output))

    def _node_by_node(self, pre: Tensor, mixing: Mixing, drop_path_prob: float) -> Tensor:
        n, channels = self.num_nodes, self.channels
        *node_inputs, output_projection = pre.split([channels] * n + [n * channels], dim=1)
        kernels = self.nodes.fused_kernels() if mixing.op_choice is None else None
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
            state = self._mixed_op(x, i, mixing.ops[i], choice, None if kernels is None else kernels[i])
            if drop_path_prob > 0:
                state = state * drop_path_mask(state, drop_path_prob)
            states.append(state)
        state_weights = mixing.output[0, 1:].repeat_interleave(channels).view(1, n * channels, 1, 1)
        return torch.addcmul(output_projection * mixing.output[0, 0], torch.cat(states, dim=1), state_weights)

    def _mixed_op(self, x: Tensor, node: int, weights: Tensor, choice: int | None, kernel: Tensor | None) -> Tensor:
        """Node `node`'s mixed op on x (B, C, H, W) -> (B, C, H, W); weights (3,).

        With partial channels K > 1 (PC-DARTS) the ops see only the first C/K channels; the rest
        bypass them, and the result is channel-shuffled with K groups. With a choice only that op
        runs, its output scaled by its weight plus the other weights as constants (zero for one-hot
        weights): as in the GDAS and NASP references, this passes the summed output gradient to
        the weights of the ops that did not run.
        """
        bypass = None
        if self.partial_channels > 1:
            split = x.shape[1] // self.partial_channels
            x, bypass = x[:, :split], x[:, split:]
        if choice is None:
            conv3x3, conv1x1 = self.nodes.convolutions(x, node, kernel).chunk(2, dim=1)
            out = weighted_sum([max_pool(x), conv3x3, conv1x1], weights)
        else:
            out = torch.addcmul(weights.sum() - weights[choice], self.nodes.single(x, node, choice), weights[choice])
        if bypass is not None:
            out = channel_shuffle(torch.cat([out, bypass], dim=1), self.partial_channels)
        return out


class OneShotModel(nn.Module):
    """The supernet of a search space: stem, `cells` cells in 3 stacks, classifier.

    Input (B, 3, 32, 32) images, output (B, num_classes) logits. Channels double and the
    resolution halves (MaxPool 2, stride 2, padding 1: 32 -> 17 -> 9) before cells
    cells // 3 and 2 * cells // 3. `bn_momentum` defaults to the reference's quirk (see
    `REFERENCE_BN_MOMENTUM`); `partial_channels` = 4 gives PC-DARTS's partial channels.

    `drop_path_prob` (a probability in [0, 1), default 0, settable at any time, e.g. by an
    optimizer's schedule): in train mode with p > 0, each choice node's output (its mixed op's
    output, before later nodes and the cell output use it) is multiplied by a per-sample mask
    Bernoulli(1 - p) / (1 - p) (B, 1, 1, 1), drawn from the default torch RNG of the input's
    device, node by node and cell by cell (as DARTS's drop_path). No effect in eval mode or with
    p = 0, and then no random numbers are drawn.

    The parameter layout is this harness's (fused); `reference_layout.from_reference_state_dict`
    maps a state dict of the reference code's `Network` onto it.
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
        self.drop_path_prob: float = 0.0
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
            Conv2d(c_prev * n, c_prev, 1),
            BatchNorm2d(c_prev, eps=BN_EPS, affine=False),
        )
        self.classifier = nn.Linear(c_prev, num_classes)
        self.partial_channels = partial_channels
        self.layout = CoefficientLayout(space)
        layers = [m for m in self.modules() if isinstance(m, BatchNorm2d)]
        for layer in layers:
            layer.counted_by_model = True
        node_layers = {id(m) for cell in self.cells for m in cell.nodes.modules()}
        self._batch_norms = (layers, [m for m in layers if id(m) not in node_layers])

    def forward(self, x: Tensor, mixing: Mixing | Sequence[Mixing]) -> Tensor:
        """x (B, 3, 32, 32) -> logits (B, num_classes); `mixing`: one Mixing for every cell, or a
        sequence of one per cell (GDAS's per-cell samples), all with or all without `op_choice`."""
        mixings = self.per_cell(mixing)
        dense = mixings[0].op_choice is None
        if self.training:
            self._count_batch(every_node=dense)
        drop_path_prob = self.drop_path_prob if self.training else 0.0
        coefficients: list[CellCoefficients | None] = [None] * len(self.cells)
        if dense and self.partial_channels == 1:
            if isinstance(mixing, Mixing):
                coefficients = self.layout.cell_coefficients(mixing.ops, mixing.inputs, mixing.output, len(self.cells))
            else:
                coefficients = [self.layout.cell_coefficients(m.ops, m.inputs, m.output, 1)[0] for m in mixings]
        s = self.stem(x)
        for i, cell in enumerate(self.cells):
            if i in self.reductions:
                s = self.downsample(s)
            s = cell(s, mixings[i], coefficients[i], drop_path_prob)
        s = self.postprocess(s)
        return self.classifier(s.mean(dim=(2, 3)))

    def per_cell(self, mixing: Mixing | Sequence[Mixing]) -> tuple[Mixing, ...]:
        """One Mixing per cell: `mixing` repeated, or the sequence checked."""
        if isinstance(mixing, Mixing):
            return (mixing,) * len(self.cells)
        mixings = tuple(mixing)
        if len(mixings) != len(self.cells):
            raise ValueError(f"one Mixing per cell: got {len(mixings)} for {len(self.cells)} cells")
        if len({m.op_choice is None for m in mixings}) > 1:
            raise ValueError("per-cell mixings must all have an op_choice or all have none")
        return mixings

    def _count_batch(self, every_node: bool) -> None:
        """Add 1 to `num_batches_tracked` of the BatchNorm layers that will run in train mode, in
        one multi-tensor op; without `every_node` (a host-side op choice), the nodes' layers count
        themselves as they run."""
        all_layers, outside_nodes = self._batch_norms
        counters = [
            m.num_batches_tracked
            for m in (all_layers if every_node else outside_nodes)
            if m.track_running_stats and m.num_batches_tracked is not None
        ]
        if counters:
            torch._foreach_add_(counters, 1)

    @torch.no_grad()
    def adopt_batch_statistics(self, images: Tensor, mixing: Mixing | Sequence[Mixing]) -> None:
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
