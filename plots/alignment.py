"""Row alignments: how a table's rows pair the architecture with the Hessian.

The harness's rows are "after k epochs" for every column (row 0: before training). The
reference code's row e pairs the architecture after e epochs with the Hessian computed at the
end of epoch e, i.e. after e + 1 epochs (SPEC §5b). `reference_alignment` rewrites a table that
way, so figures can be drawn as the paper's were.
"""

from __future__ import annotations

import pandas as pd

ALIGNMENTS = ("epochs", "reference")
"""epochs: row k = after k epochs for every column (the table as written); reference: the
reference's pairing (test error after e epochs, Hessian after e + 1), e = 0 .. epochs - 1."""
HESSIAN_COLUMNS = ("hessian_eigenvalue", "hessian_seconds")


def reference_alignment(table: pd.DataFrame) -> pd.DataFrame:
    """`table` with each run's Hessian columns moved one row up (row e takes row e + 1's) and each
    run's last row dropped (its architecture is never scored by the reference)."""
    key = ["run"] if "run" in table.columns else ["space", "optimizer", "variant", "seed"]
    key += ["method"] if "method" in table.columns else []  # a run drawn twice: in a folder and a selection
    table = table.sort_values([*key, "epoch"], kind="stable").copy()
    for column in HESSIAN_COLUMNS:
        if column in table.columns:
            table[column] = table.groupby(key)[column].shift(-1)
    last = table["epoch"] == table.groupby(key)["epoch"].transform("max")
    return table[~last].reset_index(drop=True)


def align(table: pd.DataFrame, alignment: str) -> pd.DataFrame:
    """`table` in `alignment` (one of `ALIGNMENTS`)."""
    if alignment not in ALIGNMENTS:
        raise ValueError(f"unknown alignment {alignment!r}; choose from {', '.join(ALIGNMENTS)}")
    return reference_alignment(table) if alignment == "reference" else table
