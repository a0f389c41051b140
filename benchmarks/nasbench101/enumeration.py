"""Every NAS-Bench-101 model, lazily: cell structures up to isomorphism, then their op labellings.

Used to pad synthetic tables with random extra models. Random 7-vertex DAGs cannot do that for
large counts: the benchmark has exactly 423,624 models and some are hit by very few random
matrices, so sampling cannot reach them all; drawing (structure, labelling) pairs can.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import cache

import numpy as np

from benchmarks.errors import OutOfDomainError
from benchmarks.nasbench101.graph_hash import graph_hash
from benchmarks.nasbench101.isomorphism import canonical_codes
from benchmarks.nasbench101.model_spec import (
    CONV1X1,
    CONV3X3,
    INPUT,
    MAX_EDGES,
    MAX_VERTICES,
    MAXPOOL3X3,
    OP_LABELS,
    OUTPUT,
)

NUM_MODELS = 423_624
"""Distinct models (hashes) of NAS-Bench-101."""
_INTERIOR_LABELS = (OP_LABELS[CONV3X3], OP_LABELS[CONV1X1], OP_LABELS[MAXPOOL3X3])


@cache
def cell_structures(num_vertices: int) -> np.ndarray:
    """(K, V, V) uint8: one adjacency per isomorphism class of unlabelled V-vertex cells that are
    strictly upper-triangular, have at most 9 edges and where every vertex lies on an input-output
    path (so pruning keeps them whole). Input = vertex 0, output = vertex V - 1. About 2 s for V = 7.
    """
    rows, cols = np.triu_indices(num_vertices, 1)
    codes = np.arange(2 ** len(rows), dtype=np.int64)
    bits = ((codes[:, None] >> np.arange(len(rows))) & 1).astype(np.uint8)
    bits = bits[bits.sum(axis=1) <= MAX_EDGES]
    matrices = np.zeros((len(bits), num_vertices, num_vertices), dtype=np.uint8)
    matrices[:, rows, cols] = bits
    # In a DAG in vertex order, every vertex is on an input-output path iff each vertex but the
    # input has a parent and each vertex but the output has a child.
    whole = (matrices.sum(axis=1)[:, 1:] > 0).all(axis=1) & (matrices.sum(axis=2)[:, :-1] > 0).all(axis=1)
    matrices = matrices[whole]
    _, first = np.unique(canonical_codes(matrices), return_index=True)
    return matrices[np.sort(first)]


def random_models(count: int, exclude: Collection[str], seed: int) -> list[tuple[str, np.ndarray, list[int]]]:
    """`count` distinct NAS-Bench-101 models whose hashes are not in `exclude`, drawn at random.

    Returns (hash, (V, V) uint8 adjacency, V labels) tuples, deterministic for a seed. Draws
    (structure, labelling) pairs without replacement and hashes each: about 0.25 ms per draw,
    so about 2 min when nearly all 423,624 models are asked for. Raises `OutOfDomainError` if fewer
    than `count` such models exist.
    """
    structures = [cell_structures(v) for v in range(2, MAX_VERTICES + 1)]
    sizes = np.array([len(s) * 3 ** (len(s[0]) - 2) for s in structures])
    ends = np.cumsum(sizes)
    seen = set(exclude)
    found: list[tuple[str, np.ndarray, list[int]]] = []
    for draw in np.random.default_rng(seed).permutation(int(ends[-1])).tolist():
        if len(found) == count:
            return found
        block = int(np.searchsorted(ends, draw, side="right"))
        structure, labelling = divmod(draw - int(ends[block] - sizes[block]), 3**block)
        matrix = structures[block][structure]
        interior = [_INTERIOR_LABELS[(labelling // 3**i) % 3] for i in range(block)]
        labels = [OP_LABELS[INPUT], *interior, OP_LABELS[OUTPUT]]
        module_hash = graph_hash(matrix, labels)
        if module_hash not in seen:
            seen.add(module_hash)
            found.append((module_hash, matrix, labels))
    if len(found) < count:
        raise OutOfDomainError(
            f"asked for {count} more models but only {len(found)} NAS-Bench-101 models are left "
            f"(it has {NUM_MODELS} in all)"
        )
    return found
