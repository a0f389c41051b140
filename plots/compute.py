"""Compute layer: pure functions from the tidy table to the numbers the figures and tables show.

Curves are per (space, method): `method` is the table's method, else its variant, else the
optimizer (see `plots.table`). Every frame here keeps `optimizer` too (the method's optimizer).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from plots.style import label_for, sort_methods
from plots.table import require_columns

_FINAL_METRICS: tuple[str, ...] = ("test_error", "regret", "hessian_eigenvalue")


def _ordered(frame: pd.DataFrame, extra: list[str]) -> pd.DataFrame:
    """Sort rows by space, then method in the palette's order, then `extra` columns."""
    rank = {name: i for i, name in enumerate(sort_methods(frame["method"]))}
    keys = frame["method"].map(rank)
    return frame.assign(_rank=keys).sort_values(["space", "_rank", *extra]).drop(columns="_rank").reset_index(drop=True)


def _with_method(table: pd.DataFrame) -> pd.DataFrame:
    if "method" in table.columns:
        return table
    name = table["variant"] if "variant" in table.columns else table["optimizer"]
    return table.assign(method=name.astype("string").fillna(table["optimizer"].astype("string")).astype(str))


def _optimizer_of(table: pd.DataFrame) -> dict[str, str]:
    """method -> its optimizer (the first one, should a method gather several)."""
    return table.groupby("method")["optimizer"].first().astype(str).to_dict()


def epoch_stats(table: pd.DataFrame, metric: str = "test_error") -> pd.DataFrame:
    """Mean, sample std (ddof=1) and count over seeds of `metric` per (space, method, epoch).

    NaN values are skipped; an epoch where no seed has a value is dropped; with one seed the std
    is NaN. `seeds` is the number of seeds the curve has anywhere (its largest count): where
    `count` < `seeds`, some seeds did not reach that epoch (the figures draw those epochs apart).
    Columns: space, method, optimizer, epoch, mean, std, count, seeds.
    """
    require_columns(table, ("space", "optimizer", "epoch", metric))
    table = _with_method(table)
    values = table[["space", "method", "epoch"]].assign(value=pd.to_numeric(table[metric], errors="coerce"))
    stats = values.groupby(["space", "method", "epoch"])["value"].agg(["mean", "std", "count"]).reset_index()
    stats = stats[stats["count"] > 0].astype({"count": int})
    stats["seeds"] = stats.groupby(["space", "method"])["count"].transform("max").astype(int)
    stats.insert(2, "optimizer", stats["method"].map(_optimizer_of(table)))
    return _ordered(stats, ["epoch"])


def _mean_std(series: pd.Series) -> tuple[float, float]:
    values = pd.to_numeric(series, errors="coerce")
    return float(values.mean()), float(values.std())


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (space, method): final-epoch mean ± std over seeds, best seed-mean test error.

    The final epoch is the group's last epoch; `seeds_at_final` counts the seeds that reached it.
    `best_test_error` is the minimum over epochs of the seed-mean test error, at `best_epoch`
    (the earliest on ties). Optional columns that are absent give NaN, so the layout is stable.
    """
    require_columns(table, ("space", "optimizer", "seed", "epoch", "test_error"))
    table = _with_method(table)
    best = epoch_stats(table, "test_error")
    rows = []
    for (space, method), group in table.groupby(["space", "method"]):
        final_epoch = int(group["epoch"].max())
        final = group[group["epoch"] == final_epoch]
        row = {
            "space": int(space),
            "method": method,
            "optimizer": str(group["optimizer"].iloc[0]),
            "label": label_for(method),
            "seeds": int(group["seed"].nunique()),
            "final_epoch": final_epoch,
            "seeds_at_final": int(final["seed"].nunique()),
        }
        for metric in _FINAL_METRICS:
            mean, std = _mean_std(final[metric]) if metric in final.columns else (np.nan, np.nan)
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean, std
        curve = best[(best["space"] == space) & (best["method"] == method)]
        if curve.empty:
            row["best_test_error"], row["best_epoch"] = np.nan, pd.NA
        else:
            at = curve["mean"].idxmin()
            row["best_test_error"], row["best_epoch"] = float(curve.at[at, "mean"]), int(curve.at[at, "epoch"])
        trained = group[group["epoch"] > 0]  # row 0 (before training) times only the lookups
        seconds = trained["epoch_seconds"] if "epoch_seconds" in group.columns else pd.Series(dtype=float)
        row["epoch_seconds_mean"] = float(pd.to_numeric(seconds, errors="coerce").mean())
        rows.append(row)
    frame = pd.DataFrame(rows).astype({"best_epoch": "Int64"})
    return _ordered(frame, [])


def final_rows(table: pd.DataFrame, runs: Sequence[str] = ("space", "method", "seed")) -> pd.DataFrame:
    """Each run's result row: the row marked `selected` where the table has that column (the
    row a run reports, e.g. where DARTS-ES stopped), else the run's last epoch. A run is one
    value of the `runs` columns."""
    table = _with_method(table)
    runs = list(runs)
    if "selected" in table.columns:
        marked = table[table["selected"].astype("boolean").fillna(False).astype(bool)]
        unmarked = table.drop(marked.index)
        unmarked = unmarked[~unmarked.set_index(runs).index.isin(marked.set_index(runs).index)]
        table = pd.concat([marked, unmarked])
    last = table.groupby(runs)["epoch"].transform("max")
    return table[table["epoch"] == last].drop_duplicates(runs, keep="last")


def final_error_table(
    table: pd.DataFrame, methods: list[str] | None = None, metric: str = "test_error"
) -> pd.DataFrame:
    """Final `metric` per method and space, mean and sample std over seeds (see `final_rows`):
    columns method, label, space, mean, std, seeds; methods in the order given (else palette order)."""
    require_columns(table, ("space", "optimizer", "seed", "epoch", metric))
    finals = final_rows(table)
    if methods is not None:
        finals = finals[finals["method"].isin(methods)]
    values = finals.assign(value=pd.to_numeric(finals[metric], errors="coerce"))
    stats = values.groupby(["method", "space"])["value"].agg(["mean", "std", "count"]).reset_index()
    stats = stats.rename(columns={"count": "seeds"}).astype({"seeds": int})
    order = methods if methods is not None else sort_methods(stats["method"])
    stats["_rank"] = stats["method"].map({m: i for i, m in enumerate(order)})
    stats = stats.sort_values(["_rank", "space"]).drop(columns="_rank").reset_index(drop=True)
    stats.insert(1, "label", stats["method"].map(label_for))
    return stats
