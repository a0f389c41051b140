"""NAS-Bench-1Shot1: the three search spaces and the one-shot model.

The model's names (`OneShotModel`, `Mixing`) are imported on first use, so that code which only
needs the spaces does not import torch.
"""

from benchmarks.nasbench1shot1.reference import REFERENCE_BN_MOMENTUM
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


def __getattr__(name: str):
    if name in ("Mixing", "OneShotModel"):
        from benchmarks.nasbench1shot1 import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
