"""Isomorphism helpers of the enumeration, against the graph hash on every labelling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from benchmarks.nasbench101.graph_hash import graph_hash
from benchmarks.nasbench101.isomorphism import automorphisms, canonical_codes, first_of_each_model

INPUT_LABEL, OUTPUT_LABEL = -1, -2


def random_cell(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) int8 strictly upper-triangular 0/1 matrix, about half the edges present."""
    return np.triu(rng.integers(0, 2, (size, size)), k=1).astype(np.int8)


def fan(size: int) -> np.ndarray:
    """The input feeds every interior vertex, each of them feeds the output."""
    matrix = np.zeros((size, size), dtype=np.int8)
    matrix[0, 1:-1] = 1
    matrix[1:-1, -1] = 1
    return matrix


def relabelled(matrix: np.ndarray, order: np.ndarray) -> np.ndarray:
    return matrix[np.ix_(order, order)]


def labels_of(interior) -> list[int]:
    return [INPUT_LABEL, *interior, OUTPUT_LABEL]


@pytest.mark.parametrize("size", [2, 3, 4, 5, 6])
def test_first_of_each_model_keeps_exactly_the_first_labelling_of_each_hash(size: int) -> None:
    rng = np.random.default_rng(size)
    cells = [random_cell(rng, size) for _ in range(6)]
    cells.append(np.triu(np.ones((size, size), dtype=np.int8), k=1))  # no automorphism but the identity
    cells.append(fan(size))  # every order of the interior vertices is an automorphism
    for matrix in cells:
        first_by_hash: dict[str, tuple[int, ...]] = {}
        for interior in itertools.product(range(3), repeat=size - 2):
            first_by_hash.setdefault(graph_hash(matrix, labels_of(interior)), interior)
        kept = [tuple(row) for row in first_of_each_model(matrix, 3).tolist()]
        assert kept == list(first_by_hash.values()), matrix


def test_a_fan_of_parallel_vertices_has_every_order_of_them_as_automorphism() -> None:
    assert len(automorphisms(fan(6))) == 24
    # 3**4 labellings, but a model only counts how many of the 4 vertices carry each op
    assert len(first_of_each_model(fan(6), 3)) == 15
    chain = np.eye(6, k=1, dtype=np.int8)
    assert automorphisms(chain).tolist() == [list(range(6))]
    assert len(first_of_each_model(chain, 3)) == 81


@pytest.mark.parametrize("size", [3, 5, 7])
def test_canonical_codes_are_equal_exactly_for_isomorphic_cells(size: int) -> None:
    rng = np.random.default_rng(10 + size)
    cells = np.stack([random_cell(rng, size) for _ in range(40)])
    orders = [np.array([0, *rng.permutation(np.arange(1, size - 1)), size - 1]) for _ in range(10)]
    shuffled = np.stack([relabelled(matrix, order) for matrix, order in zip(cells, orders)])
    assert (canonical_codes(shuffled) == canonical_codes(cells[:10])).all()
    codes = canonical_codes(cells).tolist()
    plain = labels_of([0] * (size - 2))
    for (first, code_1), (second, code_2) in itertools.combinations(zip(cells, codes), 2):
        assert (code_1 == code_2) == (graph_hash(first, plain) == graph_hash(second, plain))
