"""The exact NAS-Bench-101 graph hash (SPEC §2): an MD5-based Weisfeiler-Lehman fingerprint."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def graph_hash(matrix: np.ndarray, labels: Sequence[int]) -> str:
    """Fingerprint of a pruned cell.

    matrix: (V, V) 0/1 upper-triangular adjacency; labels: V ints (-1 input, -2 output,
    0 conv3x3-bn-relu, 1 conv1x1-bn-relu, 2 maxpool3x3). Returns 32 lowercase hex digits,
    equal to the hash NAS-Bench-101 stores for that model.
    """
    rows = np.asarray(matrix).tolist()
    vertices = range(len(labels))
    in_edges = [[u for u in vertices if rows[u][v]] for v in vertices]
    out_edges = [[w for w in vertices if rows[v][w]] for v in vertices]
    hashes = [_md5(f"({len(out_edges[v])}, {len(in_edges[v])}, {int(labels[v])})") for v in vertices]
    for _ in vertices:
        hashes = [
            _md5(
                "".join(sorted([hashes[w] for w in in_edges[v]]))
                + "|"
                + "".join(sorted([hashes[w] for w in out_edges[v]]))
                + "|"
                + hashes[v]
            )
            for v in vertices
        ]
    return _md5(str(sorted(hashes)))
