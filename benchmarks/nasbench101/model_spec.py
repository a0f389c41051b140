"""`ModelSpec`: a NAS-Bench-101 cell, pruned and checked on construction."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmarks.errors import OutOfDomainError
from benchmarks.nasbench101.graph_hash import graph_hash

INPUT = "input"
OUTPUT = "output"
CONV3X3 = "conv3x3-bn-relu"
CONV1X1 = "conv1x1-bn-relu"
MAXPOOL3X3 = "maxpool3x3"
OP_LABELS = {INPUT: -1, OUTPUT: -2, CONV3X3: 0, CONV1X1: 1, MAXPOOL3X3: 2}
LABEL_OPS = {label: op for op, label in OP_LABELS.items()}
PADDING_LABEL = -3
"""Label of the unused rows of a cell padded to 7 vertices in stored arrays (as in the fragments)."""
MAX_VERTICES = 7
MAX_EDGES = 9


def _live_vertices(matrix: np.ndarray) -> list[int]:
    """Vertices reachable from the input (0) that also reach the output (V-1), in order."""
    num_vertices = len(matrix)
    from_input = {0}
    for v in range(1, num_vertices):
        if any(matrix[u, v] for u in from_input):
            from_input.add(v)
    to_output = {num_vertices - 1}
    for v in range(num_vertices - 2, -1, -1):
        if any(matrix[v, w] for w in to_output):
            to_output.add(v)
    return sorted(from_input & to_output)


class ModelSpec:
    """A cell: adjacency matrix and op names, pruned as NAS-Bench-101 prunes it.

    Construction raises `OutOfDomainError` (with the reason) for anything that is not a
    valid NAS-Bench-101 model: wrong shapes, a matrix that is not 0/1 upper-triangular,
    unknown ops, input/output not at both ends, more than 7 vertices or 9 edges after
    pruning, or an output unreachable from the input.

    `original_matrix` / `original_ops` keep what was given; `matrix` / `ops` are pruned.
    """

    def __init__(self, matrix: Sequence[Sequence[int]] | np.ndarray, ops: Sequence[str]):
        original = np.asarray(matrix)
        ops = list(ops)
        if original.ndim != 2 or original.shape[0] != original.shape[1]:
            raise OutOfDomainError(f"adjacency matrix must be square, got shape {original.shape}")
        if original.shape[0] != len(ops):
            raise OutOfDomainError(f"adjacency matrix has {original.shape[0]} vertices but {len(ops)} ops were given")
        if len(ops) < 2:
            raise OutOfDomainError(f"a cell needs at least an input and an output, got ops {ops}")
        if not np.isin(original, (0, 1)).all():
            raise OutOfDomainError("adjacency matrix entries must be 0 or 1")
        original = original.astype(np.int8)
        if np.tril(original).any():
            raise OutOfDomainError("adjacency matrix must be strictly upper-triangular (a DAG in vertex order)")
        unknown = [op for op in ops if op not in OP_LABELS]
        if unknown:
            raise OutOfDomainError(f"unknown op(s) {unknown}; allowed: {sorted(OP_LABELS)}")
        if ops[0] != INPUT or ops[-1] != OUTPUT:
            raise OutOfDomainError(f"ops must start with '{INPUT}' and end with '{OUTPUT}', got {ops}")
        if INPUT in ops[1:] or OUTPUT in ops[:-1]:
            raise OutOfDomainError(f"'{INPUT}'/'{OUTPUT}' may only appear at the ends, got {ops}")
        self.original_matrix = original
        self.original_ops = ops
        live = _live_vertices(original)
        if 0 not in live:
            raise OutOfDomainError("the output is not reachable from the input: nothing is left after pruning")
        self.matrix = original[np.ix_(live, live)]
        self.ops = [ops[v] for v in live]
        if len(self.ops) > MAX_VERTICES:
            raise OutOfDomainError(
                f"{len(self.ops)} vertices after pruning; NAS-Bench-101 allows at most {MAX_VERTICES}"
            )
        if self.num_edges > MAX_EDGES:
            raise OutOfDomainError(f"{self.num_edges} edges after pruning; NAS-Bench-101 allows at most {MAX_EDGES}")
        self._hash: str | None = None

    @classmethod
    def from_labels(cls, matrix: Sequence[Sequence[int]] | np.ndarray, labels: Sequence[int]) -> ModelSpec:
        """Build from integer labels (-1 input, -2 output, 0/1/2 the three ops)."""
        try:
            ops = [LABEL_OPS[int(label)] for label in labels]
        except KeyError as err:
            raise OutOfDomainError(f"unknown op label {err.args[0]}; allowed: {sorted(LABEL_OPS)}") from None
        return cls(np.asarray(matrix).astype(np.int64), ops)

    @property
    def num_vertices(self) -> int:
        return len(self.ops)

    @property
    def num_edges(self) -> int:
        return int(self.matrix.sum())

    @property
    def labels(self) -> list[int]:
        """Integer labels of the pruned ops (see `OP_LABELS`)."""
        return [OP_LABELS[op] for op in self.ops]

    def hash(self) -> str:
        """The NAS-Bench-101 hash of the pruned cell (32 lowercase hex digits)."""
        if self._hash is None:
            self._hash = graph_hash(self.matrix, self.labels)
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelSpec) and self.hash() == other.hash()

    def __hash__(self) -> int:
        return hash(self.hash())

    def __repr__(self) -> str:
        rows = ["".join(str(int(x)) for x in row) for row in self.matrix]
        return f"ModelSpec(matrix={rows}, ops={self.ops})"
