"""The weighted sums of a cell as coefficients over channel groups (the fused dense path, SPEC §4).

In the dense path a cell keeps one growing tensor T of channel groups of C channels each: the n
projections of the cell input to nodes 1..n, then each node's 3 op outputs [maxpool, conv3x3,
conv1x1] in turn, then the n output-projection blocks (5n groups in all; node i's input only
needs the first n + 3 (i - 1)). Every sum the cell forms is linear in those groups:

* the input of node i: w_i0 * projection_i + sum_{j<i} w_ij * sum_o a_jo * op_o(node j);
* output block k: v_0 * output projection block k + v_k * sum_o a_ko * op_o(node k),

with a the op weights (n, 3), w the input weights (1 for fixed parents, 0 for non-parents) and v
the output weights. This module turns a `Mixing` into those coefficient rows, once per forward
pass for all cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from benchmarks.nasbench1shot1.spaces import SearchSpace


@dataclass(frozen=True)
class CellCoefficients:
    """The coefficient rows of one cell.

    nodes[i]: (1, n + 3i) coefficients of node i + 1's input, or None where that input is the
    node's projection alone; output: (n, 5n) coefficients of the n output blocks.
    """

    nodes: tuple[Tensor | None, ...]
    output: Tensor


class CoefficientLayout(nn.Module):
    """Where each mixing weight goes in the (2n, n + 1) edge-weight matrix E of a space: rows are
    the consumers (nodes 1..n, then output blocks 1..n), columns the candidates (0 = the cell
    input's projection, j = node j). Constant index buffers, moved with the model."""

    def __init__(self, space: SearchSpace):
        super().__init__()
        n = space.num_choice_nodes
        self.num_nodes = n
        self.projection_only = tuple(space.fixed_parents.get(node) == (0,) for node in range(1, n + 1))
        # flat vector = [0, 1, *searched input weights (node order), *output weights (v_0..v_n)]
        index = torch.zeros(2 * n, n + 1, dtype=torch.long)
        position = 2
        for node in range(1, n + 1):
            if node in space.fixed_parents:
                index[node - 1, list(space.fixed_parents[node])] = 1
            else:
                index[node - 1, :node] = torch.arange(position, position + node)
                position += node
        for block in range(1, n + 1):
            index[n + block - 1, 0] = position
            index[n + block - 1, block] = position + block
        self.register_buffer("index", index, persistent=False)
        self.register_buffer("constants", torch.tensor([0.0, 1.0]), persistent=False)

    def edge_weights(self, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        """E (2n, n + 1) from the searched nodes' input weights (each (1, node)) and the output
        weights (1, n + 1), in the dtype of the model's floating-point buffers."""
        dtype = self.constants.dtype
        flat = torch.cat([self.constants, *(w.reshape(-1).to(dtype) for w in (*inputs, output))])
        return flat[self.index]

    def cell_coefficients(
        self, ops: Tensor, inputs: tuple[Tensor, ...], output: Tensor, cells: int
    ) -> list[CellCoefficients]:
        """The coefficient rows of `cells` cells (equal values; one copy per cell, so that the
        backward pass sums the cells' gradients in one operation, not cells - 1).

        ops: (n, 3) op weights; inputs: the searched nodes' input weights; output: (1, n + 1).
        """
        n = self.num_nodes
        edges = self.edge_weights(inputs, output)
        projection = torch.diag(edges[:, 0])  # (2n, 2n): row r's projection is candidate group r
        states = (edges[:, 1:, None] * ops.to(edges.dtype)).flatten(1)  # (2n, 3n): E[r, j] * a[j - 1, o]
        coefficients = torch.cat([projection[:, :n], states, projection[:, n:]], dim=1)  # (2n, 5n)
        rows: list[tuple[Tensor, ...] | None] = [
            None if only else coefficients[i : i + 1, : n + 3 * i].expand(cells, 1, -1).unbind(0)
            for i, only in enumerate(self.projection_only)
        ]
        blocks = coefficients[n:].expand(cells, n, 5 * n).unbind(0)
        return [
            CellCoefficients(tuple(None if r is None else r[cell] for r in rows), blocks[cell]) for cell in range(cells)
        ]
