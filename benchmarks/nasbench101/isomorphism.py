"""Isomorphism of small cells with a fixed input (first vertex) and output (last vertex).

Used to enumerate a set of cells without hashing the same model twice: two labellings of one
unlabelled cell are the same model exactly when an automorphism of the cell maps one onto the
other, and two isomorphic unlabelled cells carry the same models.
"""

from __future__ import annotations

import itertools

import numpy as np


def _vertex_orders(size: int) -> np.ndarray:
    """(P, size) int: every order of the vertices that keeps the input first and the output last."""
    interior = list(itertools.permutations(range(1, size - 1)))
    return np.array([(0, *order, size - 1) for order in interior], dtype=np.int64).reshape(len(interior), size)


def canonical_codes(matrices: np.ndarray) -> np.ndarray:
    """(K,) int64 for K (V, V) 0/1 adjacency matrices (V <= 7): equal for two of them exactly when
    the cells are isomorphic (input and output fixed); the smallest relabelled matrix read as a
    V*V-bit number."""
    matrices = np.asarray(matrices)
    count, size = len(matrices), matrices.shape[-1]
    if size > 7:
        raise ValueError(f"cells of up to 7 vertices fit a 64-bit code, got {size}")
    flat = matrices.reshape(count, size * size).astype(np.int64)
    weights = np.int64(1) << np.arange(size * size, dtype=np.int64)
    codes = np.full(count, np.iinfo(np.int64).max)
    for order in _vertex_orders(size):
        codes = np.minimum(codes, flat[:, (order[:, None] * size + order).ravel()] @ weights)
    return codes


def automorphisms(matrix: np.ndarray) -> np.ndarray:
    """(A, V) int: the vertex orders `p` with matrix[p][:, p] == matrix (the identity included)."""
    matrix = np.asarray(matrix, dtype=np.int8)
    orders = _vertex_orders(len(matrix))
    relabelled = matrix[orders[:, :, None], orders[:, None, :]]
    return orders[(relabelled == matrix).all(axis=(1, 2))]


def first_of_each_model(matrix: np.ndarray, num_ops: int) -> np.ndarray:
    """(M, V - 2) int: the interior labellings of a cell, in `itertools.product(range(num_ops),
    repeat=V - 2)` order, that come first among the labellings giving the same model; every model
    the cell can carry appears exactly once."""
    size = len(matrix)
    every = list(itertools.product(range(num_ops), repeat=size - 2))
    labellings = np.array(every, dtype=np.int64).reshape(len(every), size - 2)
    # product order is the order of the labellings read as base-num_ops numbers, first digit highest
    place = num_ops ** np.arange(size - 3, -1, -1, dtype=np.int64)
    rank = labellings @ place
    first = np.ones(len(labellings), dtype=bool)
    for order in automorphisms(matrix):
        interior = order[1:-1] - 1
        first &= rank <= labellings[:, interior] @ place
    return labellings[first]
