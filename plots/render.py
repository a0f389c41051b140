"""Render layer: figures and the markdown table from the compute layer's frames (no file I/O here).

Figures are built on `matplotlib.figure.Figure` with an Agg canvas, never through pyplot, so
no GUI backend is touched, no global figure registry grows, and the caller's backend is kept.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from plots.style import color_for, label_for, linestyle_for, sort_optimizers
from plots.table import SYNTHETIC_TAG

_PANEL_WIDTH, _PANEL_HEIGHT, _LEGEND_CELL = 4.2, 3.3, 1.75
_BAND_ALPHA = 0.22


def _titled(text: str, tag: str) -> str:
    return f"{text} ({tag})" if tag else text


def _draw_curve(ax, curve: pd.DataFrame, optimizer: str, floor: float | None) -> None:
    """One optimizer in one panel: the seed-mean line and its ± std band (absent where std is NaN)."""
    x = curve["epoch"].to_numpy(float)
    mean, std = curve["mean"].to_numpy(float), curve["std"].to_numpy(float)
    style = {"color": color_for(optimizer), "linestyle": linestyle_for(optimizer), "label": label_for(optimizer)}
    if len(curve) == 1:  # a single epoch: a marker, with an error bar instead of a band
        ax.errorbar(x, mean, yerr=None if np.isnan(std).all() else std, marker="o", capsize=3, **style)
        return
    ax.plot(x, mean, linewidth=1.6, **style)
    lower = mean - std
    if floor is not None:  # log axis: a wide band must not drag the axis down to ~0
        lower = np.maximum(lower, floor)
    ax.fill_between(x, lower, mean + std, color=style["color"], alpha=_BAND_ALPHA, linewidth=0, label="_band")


def _log_floor(stats: pd.DataFrame) -> float:
    """Lowest value a band may reach on a log axis: half the panel's smallest positive mean."""
    positive = stats["mean"][stats["mean"] > 0]
    return float(positive.min()) / 2 if not positive.empty else 1e-6


def metric_figure(
    stats: pd.DataFrame,
    spaces: list[int],
    *,
    title: str,
    ylabel: str,
    tag: str = "",
    log_y: bool = False,
) -> Figure:
    """One panel per space (1 row), one line per optimizer, mean ± std band over seeds.

    `stats` is `compute.epoch_stats` output; `tag` names the benchmark in the suptitle, and with
    `SYNTHETIC_TAG` in every panel title too, so synthetic data cannot pass for NAS-Bench-101.
    """
    optimizers = sort_optimizers(stats["optimizer"])
    width = max(_PANEL_WIDTH * len(spaces), 5.5)
    legend_rows = math.ceil(len(optimizers) / max(1, int(width // _LEGEND_CELL)))
    ncol = math.ceil(len(optimizers) / legend_rows) if optimizers else 1  # balanced rows
    fig = Figure(figsize=(width, _PANEL_HEIGHT + 0.3 * legend_rows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(spaces), squeeze=False)[0]
    panel_tag = tag if tag == SYNTHETIC_TAG else ""
    for ax, space in zip(axes, spaces, strict=True):
        panel = stats[stats["space"] == space]
        floor = _log_floor(panel) if log_y else None
        for optimizer in sort_optimizers(panel["optimizer"]):
            _draw_curve(ax, panel[panel["optimizer"] == optimizer].sort_values("epoch"), optimizer, floor)
        if panel.empty:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="0.4")
        ax.set_title(_titled(f"Search space {space}", panel_tag))
        ax.set_xlabel("search epoch")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if not panel.empty and panel["epoch"].nunique() == 1:  # one epoch: one tick, not a ±0.05 range
            ax.set_xticks([int(panel["epoch"].iloc[0])])
        ax.grid(True, alpha=0.3)
        if log_y:
            ax.set_yscale("log")
    single = stats.groupby("optimizer")["epoch"].nunique() == 1  # drawn as markers only
    handles = [
        Line2D(
            [], [], color=color_for(o), linestyle=linestyle_for(o), linewidth=2,
            marker="o" if single[o] else None, label=label_for(o),
        )
        for o in optimizers
    ]  # fmt: skip
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=ncol, frameon=False)
    fig.suptitle(_titled(title, tag) + "\nmean ± std over seeds", fontsize=12)
    return fig


def _pm(mean: float, std: float, fmt: str) -> str:
    if pd.isna(mean):
        return "n/a"
    return format(mean, fmt) if pd.isna(std) else f"{mean:{fmt}} ± {std:{fmt}}"


def summary_markdown(table: pd.DataFrame, tag: str = "") -> str:
    """`compute.summary` output as a markdown document with one table."""
    header = [
        "Space", "Optimizer", "Seeds", "Final epoch", "Test error", "Regret",
        "Hessian eigenvalue", "Best test error (epoch)", "Seconds / epoch",
    ]  # fmt: skip
    lines = [
        f"# {_titled('Search summary', tag)}",
        "",
        "Test error, regret and Hessian eigenvalue at each run's final epoch: mean ± std over seeds.",
        "Best test error: the lowest seed-mean test error over all epochs, with its (0-based) epoch.",
        "",
        "| " + " | ".join(header) + " |",
        "|---:|:---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in table.itertuples(index=False):
        seeds = str(row.seeds) if row.seeds_at_final == row.seeds else f"{row.seeds} ({row.seeds_at_final} at final)"
        best = "n/a" if pd.isna(row.best_test_error) else f"{row.best_test_error:.4f} ({row.best_epoch})"
        seconds = "n/a" if pd.isna(row.epoch_seconds_mean) else f"{row.epoch_seconds_mean:.1f}"
        cells = [
            str(row.space), row.label, seeds, str(row.final_epoch),
            _pm(row.test_error_mean, row.test_error_std, ".4f"),
            _pm(row.regret_mean, row.regret_std, ".4f"),
            _pm(row.hessian_eigenvalue_mean, row.hessian_eigenvalue_std, ".4f"),
            best, seconds,
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
