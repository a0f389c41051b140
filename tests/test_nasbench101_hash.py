"""The NAS-Bench-101 graph hash against real test vectors, and pruning / validity of `ModelSpec`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.nasbench101 import ModelSpec, OutOfDomainError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FRAGMENT = SHARED / "data" / "nb101-fragments" / "nb101_1k_with_specs.json"
C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"


@pytest.fixture(scope="module")
def real_models() -> dict:
    if not FRAGMENT.is_file():
        pytest.skip(f"{FRAGMENT} is not there (the offline NAS-Bench-101 fragments beside the repository)")
    return json.loads(FRAGMENT.read_text())


def test_real_hashes_match(real_models: dict) -> None:
    mismatches = []
    for key, adjacency, labels in zip(
        real_models["key"], real_models["adjacency"], real_models["operations"], strict=True
    ):
        keep = [v for v, label in enumerate(labels) if label != -3]
        matrix = np.asarray(adjacency, dtype=np.int64)[np.ix_(keep, keep)]
        spec = ModelSpec.from_labels(matrix, [labels[v] for v in keep])
        if spec.hash() != key:
            mismatches.append(key)
    assert len(real_models["key"]) == 1000
    assert mismatches == []


def chain(n: int) -> np.ndarray:
    """Adjacency of a chain 0 -> 1 -> ... -> n-1."""
    return np.eye(n, k=1, dtype=np.int64)


def test_dangling_vertex_is_pruned() -> None:
    matrix = chain(4)
    matrix[1, 3] = 1  # vertex 2 hangs off vertex 1 ...
    matrix[2, 3] = 0  # ... and reaches nothing
    spec = ModelSpec(matrix, ["input", C3, MP, "output"])
    assert spec.ops == ["input", C3, "output"]
    assert spec.hash() == ModelSpec(chain(3), ["input", C3, "output"]).hash()


def test_vertex_unreachable_from_input_is_pruned() -> None:
    matrix = np.zeros((4, 4), dtype=np.int64)
    matrix[0, 1] = matrix[1, 3] = matrix[2, 3] = 1  # vertex 2 feeds the output but has no parent
    spec = ModelSpec(matrix, ["input", C1, C3, "output"])
    assert spec.ops == ["input", C1, "output"]
    assert spec.num_edges == 2


def test_disconnected_output_is_out_of_domain() -> None:
    matrix = np.zeros((4, 4), dtype=np.int64)
    matrix[0, 1] = matrix[1, 2] = 1
    with pytest.raises(OutOfDomainError, match="not reachable"):
        ModelSpec(matrix, ["input", C3, C3, "output"])


def test_too_many_edges() -> None:
    with pytest.raises(OutOfDomainError, match="edges"):
        ModelSpec(np.triu(np.ones((7, 7), dtype=np.int64), 1), ["input", C3, C3, C3, C1, MP, "output"])


def test_not_upper_triangular() -> None:
    matrix = chain(3)
    matrix[2, 1] = 1
    with pytest.raises(OutOfDomainError, match="upper-triangular"):
        ModelSpec(matrix, ["input", C3, "output"])


def test_unknown_op() -> None:
    with pytest.raises(OutOfDomainError, match="unknown op"):
        ModelSpec(chain(3), ["input", "conv5x5-bn-relu", "output"])
