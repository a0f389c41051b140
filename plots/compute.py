"""Compute layer: pure functions from the tidy table to the numbers the figures and tables show."""

from __future__ import annotations

import numpy as np
import pandas as pd

from plots.style import label_for, sort_optimizers
from plots.table import require_columns

_FINAL_METRICS: tuple[str, ...] = ("test_error", "regret", "hessian_eigenvalue")


def _ordered(frame: pd.DataFrame, extra: list[str]) -> pd.DataFrame:
    """Sort rows by space, then optimizer in the palette's order, then `extra` columns."""
    rank = {name: i for i, name in enumerate(sort_optimizers(frame["optimizer"]))}
    keys = frame["optimizer"].map(rank)
    return frame.assign(_rank=keys).sort_values(["space", "_rank", *extra]).drop(columns="_rank").reset_index(drop=True)


def epoch_stats(table: pd.DataFrame, metric: str = "test_error") -> pd.DataFrame:
    """Mean, sample std (ddof=1) and count over seeds of `metric` per (space, optimizer, epoch).

    NaN values are skipped; an epoch where no seed has a value is dropped; with one seed the std
    is NaN. Columns: space, optimizer, epoch, mean, std, count.
    """
    require_columns(table, ("space", "optimizer", "epoch", metric))
    values = table[["space", "optimizer", "epoch"]].assign(value=pd.to_numeric(table[metric], errors="coerce"))
    stats = values.groupby(["space", "optimizer", "epoch"])["value"].agg(["mean", "std", "count"]).reset_index()
    stats = stats[stats["count"] > 0]
    return _ordered(stats.astype({"count": int}), ["epoch"])


def _mean_std(series: pd.Series) -> tuple[float, float]:
    values = pd.to_numeric(series, errors="coerce")
    return float(values.mean()), float(values.std())


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (space, optimizer): final-epoch mean ± std over seeds, best seed-mean test error.

    The final epoch is the group's last epoch; `seeds_at_final` counts the seeds that reached it.
    `best_test_error` is the minimum over epochs of the seed-mean test error, at `best_epoch`
    (the earliest on ties). Optional columns that are absent give NaN, so the layout is stable.
    """
    require_columns(table, ("space", "optimizer", "seed", "epoch", "test_error"))
    best = epoch_stats(table, "test_error")
    rows = []
    for (space, optimizer), group in table.groupby(["space", "optimizer"]):
        final_epoch = int(group["epoch"].max())
        final = group[group["epoch"] == final_epoch]
        row = {
            "space": int(space),
            "optimizer": optimizer,
            "label": label_for(optimizer),
            "seeds": int(group["seed"].nunique()),
            "final_epoch": final_epoch,
            "seeds_at_final": int(final["seed"].nunique()),
        }
        for metric in _FINAL_METRICS:
            mean, std = _mean_std(final[metric]) if metric in final.columns else (np.nan, np.nan)
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean, std
        curve = best[(best["space"] == space) & (best["optimizer"] == optimizer)]
        if curve.empty:
            row["best_test_error"], row["best_epoch"] = np.nan, pd.NA
        else:
            at = curve["mean"].idxmin()
            row["best_test_error"], row["best_epoch"] = float(curve.at[at, "mean"]), int(curve.at[at, "epoch"])
        seconds = group["epoch_seconds"] if "epoch_seconds" in group.columns else pd.Series(dtype=float)
        row["epoch_seconds_mean"] = float(pd.to_numeric(seconds, errors="coerce").mean())
        rows.append(row)
    frame = pd.DataFrame(rows).astype({"best_epoch": "Int64"})
    return _ordered(frame, [])
