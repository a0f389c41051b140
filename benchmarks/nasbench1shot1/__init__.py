"""NAS-Bench-1Shot1: the three search spaces and the one-shot model."""

from benchmarks.nasbench1shot1.spaces import (
    PRIMITIVES,
    CellChoice,
    SearchSpace,
    get_search_space,
)

__all__ = ["PRIMITIVES", "CellChoice", "SearchSpace", "get_search_space"]
