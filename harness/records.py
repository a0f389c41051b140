"""Per-row records kept beside the table: the architecture parameters, and the optimizer's own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from benchmarks.nasbench1shot1 import SearchSpace

ALPHA_COLUMNS = {"epoch": "int64", "tensor": "string", "row": "int64", "column": "int64", "value": "float64"}
"""alphas.parquet: epoch (the table's row), tensor ("ops", "output", "inputs_nodeN"), row, column, value."""


def alpha_tensor_names(space: SearchSpace) -> list[str]:
    """Names of the architecture tensors in alpha order: ops (n, 3), output (1, n + 1), inputs of
    each searched choice node N (1, N)."""
    return ["ops", "output", *(f"inputs_node{node}" for node in space.choice_input_nodes)]


def alpha_records(space: SearchSpace, alphas: Sequence[Tensor], epoch: int) -> list[dict[str, Any]]:
    """One record per architecture parameter value of row `epoch` (empty without alphas)."""
    if not alphas:
        return []
    return [
        {"epoch": epoch, "tensor": name, "row": r, "column": c, "value": float(value)}
        for name, alpha in zip(alpha_tensor_names(space), alphas)
        for r, values in enumerate(alpha.detach().cpu().double().tolist())
        for c, value in enumerate(values)
    ]


def plain(record: dict[str, Any]) -> dict[str, Any]:
    """`record` with numpy/torch scalars as Python numbers (checkpoints load them safely)."""
    return {key: value.item() if hasattr(value, "item") else value for key, value in record.items()}
