"""Selection among the variants of a method: the protocol of R-DARTS (Zela et al., ICLR 2020)
that SDARTS §5.5 compares against. A method is run at several settings (e.g. R-DARTS(L2) at
four weight decays); per search space and seed, the setting whose final architecture has the best
search-valid performance is kept, and its rows are reported under the method's name.

Search-valid performance is the supernet's validation accuracy on the search-valid split
(`supernet_valid_accuracy`; `valid_accuracy` in tables before schema version 4), higher is better.
Nothing from NAS-Bench-101 (test or benchmark-valid error) enters the choice. A run's final row
is the row flagged `selected` (the architecture the run reports; for an early-stopped run, the
row it points back to) where the table has that flag, else its last epoch. Ties go to the variant
named first. Pure post-processing on a tidy table (pandas only).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from plots.compute import final_rows
from plots.errors import MissingColumnsError, TableFormatError
from plots.table import require_columns

PERFORMANCE_COLUMNS = ("supernet_valid_accuracy", "valid_accuracy")
"""The search-valid accuracy (fraction in [0, 1]), by its current name first."""
RUN = ["space", "seed", "variant"]
"""What tells one run from another among the variants of one method."""


def performance_column(table: pd.DataFrame) -> str:
    """The name the table gives the supernet's search-valid accuracy."""
    for name in PERFORMANCE_COLUMNS:
        if name in table.columns:
            return name
    raise MissingColumnsError(
        f"results table lacks the search-valid accuracy ({' or '.join(PERFORMANCE_COLUMNS)}); "
        f"present: {', '.join(map(str, table.columns))}"
    )


def picks(table: pd.DataFrame, variant_names: Sequence[str]) -> pd.DataFrame:
    """Per (space, seed): the chosen variant, its final row's `epoch` and `score` (search-valid
    accuracy), and `candidates`, the number of `variant_names` that had a run to choose from."""
    require_columns(table, ("space", "seed", "epoch", "variant"))
    score = performance_column(table)
    order = {name: i for i, name in enumerate(variant_names)}
    runs = table[table["variant"].astype(str).isin(order)]
    if runs.empty:
        present = ", ".join(sorted(table["variant"].astype(str).unique()))
        raise TableFormatError(f"results table has no run of variants {', '.join(variant_names)}; present: {present}")
    finals = final_rows(runs, RUN).assign(score=lambda f: pd.to_numeric(f[score], errors="coerce"))
    finals["candidates"] = finals.groupby(["space", "seed"])["variant"].transform("size")
    unscored = finals.groupby(["space", "seed"])["score"].transform("count") == 0
    if unscored.any():
        space, seed = finals.loc[unscored, ["space", "seed"]].iloc[0]
        raise TableFormatError(f"space {space}, seed {seed}: no variant has a search-valid accuracy ({score})")
    finals["rank"] = finals["variant"].astype(str).map(order)
    best = finals.dropna(subset=["score"]).sort_values(["score", "rank"], ascending=[False, True])
    chosen = best.groupby(["space", "seed"], sort=True).head(1).sort_values(["space", "seed"])
    return chosen[["space", "seed", "variant", "epoch", "score", "candidates"]].reset_index(drop=True)


def select_variants(table: pd.DataFrame, method_name: str, variant_names: Sequence[str]) -> pd.DataFrame:
    """The rows of each (space, seed)'s chosen variant (see `picks`), all epochs, with `method`
    set to `method_name` and `variant` kept as the one chosen."""
    chosen = set(picks(table, variant_names)[RUN].itertuples(index=False, name=None))
    keys = zip(table["space"], table["seed"], table["variant"].astype(str))
    rows = table[[key in chosen for key in keys]]
    return rows.assign(method=method_name).sort_values([*RUN, "epoch"]).reset_index(drop=True)
