"""Row alignments for the figures: the harness's (after k epochs) and the reference's."""

from __future__ import annotations

import pandas as pd

from plots.alignment import align


def test_the_reference_alignment_pairs_row_e_with_the_next_rows_hessian():
    table = pd.DataFrame(
        {
            "run": ["a"] * 3 + ["b"] * 3,
            "epoch": [0, 1, 2] * 2,
            "test_error": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
            "hessian_eigenvalue": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )
    aligned = align(table, "reference")
    assert aligned["epoch"].tolist() == [0, 1, 0, 1]
    assert aligned["test_error"].tolist() == [0.1, 0.2, 0.4, 0.5]
    assert aligned["hessian_eigenvalue"].tolist() == [2.0, 3.0, 5.0, 6.0]
    assert align(table, "epochs") is table


def test_a_run_drawn_twice_is_aligned_within_each_copy():
    table = pd.DataFrame(
        {
            "run": ["a"] * 4,
            "method": ["darts"] * 2 + ["R-DARTS(L2)"] * 2,
            "epoch": [0, 1, 0, 1],
            "hessian_eigenvalue": [1.0, 2.0, 1.0, 2.0],
        }
    )
    assert align(table, "reference")["hessian_eigenvalue"].tolist() == [2.0, 2.0]
