"""NAS-Bench-1Shot1: the three search spaces and the one-shot model."""

from benchmarks.nasbench1shot1.model import Mixing, OneShotModel
from benchmarks.nasbench1shot1.ops import REFERENCE_BN_MOMENTUM
from benchmarks.nasbench1shot1.spaces import PRIMITIVES, CellChoice, SearchSpace, get_search_space

__all__ = [
    "PRIMITIVES",
    "REFERENCE_BN_MOMENTUM",
    "CellChoice",
    "Mixing",
    "OneShotModel",
    "SearchSpace",
    "get_search_space",
]
