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
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from plots.style import DEFAULT_SIZE, check_size, color_for, label_for, linestyle_for, paper_style, sort_methods

_BAND_ALPHA = 0.22
_LEGEND_CELL = 1.5
"""Inches of figure width per legend column."""
_CLIPPED_MARKER = "v"
_FEWER_SEEDS = ":"


def _titled(text: str, tag: str) -> str:
    return f"{text} ({tag})" if tag else text


def _draw_curve(ax, curve: pd.DataFrame, method: str, floor: float | None) -> tuple[bool, bool]:
    """One method in one panel: the seed-mean line and its ± std band over the epochs all of the
    curve's seeds reached; a dotted line without band where fewer seeds have values; on a log
    axis, band edges cut off at `floor` marked with a downward triangle. Returns (drew epochs
    with fewer seeds, clipped a band)."""
    x = curve["epoch"].to_numpy(float)
    mean, std = curve["mean"].to_numpy(float), curve["std"].to_numpy(float)
    full = (curve["count"] == curve["seeds"]).to_numpy()
    colour, style = color_for(method), linestyle_for(method)
    if len(curve) == 1:  # a single epoch: a marker, with an error bar instead of a band
        ax.errorbar(
            x, mean, yerr=None if np.isnan(std).all() else std, marker="o", markersize=3, capsize=2,
            color=colour, linestyle=style, label=label_for(method),
        )  # fmt: skip
        return False, False
    fewer = not full.all()
    if fewer:  # epochs that fewer seeds reached: dotted, thin, under the solid line
        ax.plot(x, mean, color=colour, linestyle=_FEWER_SEEDS, linewidth=0.9, label="_fewer seeds")
    ax.plot(x, np.where(full, mean, np.nan), color=colour, linestyle=style, label=label_for(method))
    lower, upper = mean - std, mean + std
    clipped = np.zeros(len(x), dtype=bool)
    if floor is not None:  # log axis: a band edge at or below 0 cannot be drawn; cut it off visibly
        clipped = full & (lower < floor)
        lower = np.maximum(lower, floor)
    band = full & ~np.isnan(std)
    ax.fill_between(x, lower, upper, where=band, color=colour, alpha=_BAND_ALPHA, linewidth=0, label="_band")
    if clipped.any():
        ax.plot(x[clipped], lower[clipped], _CLIPPED_MARKER, color=colour, markersize=3, label="_clipped")
    return fewer, bool(clipped.any())


def _log_floor(stats: pd.DataFrame) -> float:
    """Lowest value a band may reach on a log axis: half the panel's smallest positive mean."""
    positive = stats["mean"][stats["mean"] > 0]
    return float(positive.min()) / 2 if not positive.empty else 1e-6


def _seed_label(method: str, stats: pd.DataFrame) -> str:
    """'DARTS (n=3)': the method's seed count (a range when the spaces differ)."""
    counts = sorted(set(stats.loc[stats["method"] == method, "seeds"].astype(int)))
    n = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"{label_for(method)} (n={n})"


def metric_figure(
    stats: pd.DataFrame,
    spaces: list[int],
    *,
    title: str,
    ylabel: str,
    tag: str = "",
    log_y: bool = False,
    size: str = DEFAULT_SIZE,
    order: list[str] | None = None,
) -> Figure:
    """One panel per space, one line per method, mean ± std band over seeds.

    `stats` is `compute.epoch_stats` output; `tag` names the benchmark once, in the one-line
    title. `size` is a `style.SIZES` preset (two-column: panels side by side across 6.75 in;
    one-column: stacked in 3.25 in). The legend gives each method's number of seeds; `order`
    sets the methods' order (default: the palette's).
    """
    preset = check_size(size)
    with paper_style(size):
        return _metric_figure(stats, spaces, title, ylabel, tag, log_y, preset, order)


def _metric_figure(stats, spaces, title, ylabel, tag, log_y, preset, order) -> Figure:
    methods = sort_methods(stats["method"])
    if order is not None:
        methods = [m for m in order if m in methods] + [m for m in methods if m not in order]
    rows, cols = (len(spaces), 1) if preset.stacked else (1, len(spaces))
    ncol = max(1, min(len(methods) + 3, int(preset.width // _LEGEND_CELL)))
    legend_rows = math.ceil((len(methods) + 3) / ncol)
    height = preset.panel_height * rows + 0.18 * legend_rows * preset.font / 8 + 0.35
    fig = Figure(figsize=(preset.width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True).reshape(-1)
    any_fewer = any_clipped = False
    for ax, space in zip(axes, spaces, strict=True):
        panel = stats[stats["space"] == space]
        floor = _log_floor(panel) if log_y else None
        for method in [m for m in methods if m in set(panel["method"])]:
            fewer, clipped = _draw_curve(ax, panel[panel["method"] == method].sort_values("epoch"), method, floor)
            any_fewer, any_clipped = any_fewer or fewer, any_clipped or clipped
        if panel.empty:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="0.4")
        ax.set_title(f"Space {space}", pad=3)
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if not panel.empty and panel["epoch"].nunique() == 1:  # one epoch: one tick, not a ±0.05 range
            ax.set_xticks([int(panel["epoch"].iloc[0])])
        ax.grid(True, alpha=0.3)
        if log_y:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
    for ax in axes[-cols:] if not preset.stacked else axes[-1:]:
        ax.set_xlabel("epochs completed")
    single = stats.groupby("method")["epoch"].nunique() == 1  # drawn as markers only
    handles = [
        Line2D(
            [], [], color=color_for(m), linestyle=linestyle_for(m), linewidth=1.5,
            marker="o" if single[m] else None, markersize=3, label=_seed_label(m, stats),
        )
        for m in methods
    ]  # fmt: skip
    if (stats["count"] > 1).any():
        handles.append(Patch(color="0.3", alpha=_BAND_ALPHA, linewidth=0, label="± std over seeds"))
    if any_fewer:
        handles.append(Line2D([], [], color="0.3", linestyle=_FEWER_SEEDS, label="fewer seeds reached"))
    if any_clipped:
        handles.append(
            Line2D([], [], color="0.3", linestyle="", marker=_CLIPPED_MARKER, markersize=3, label="band cut at axis")
        )
    if handles:
        ncol = min(ncol, len(handles))
        fig.legend(handles=handles, loc="outside lower center", ncol=ncol, frameon=False, handlelength=1.8)
    fig.suptitle(_titled(title, tag))
    return fig


def _pm(mean: float, std: float, fmt: str) -> str:
    if pd.isna(mean):
        return "n/a"
    return format(mean, fmt) if pd.isna(std) else f"{mean:{fmt}} ± {std:{fmt}}"


def summary_markdown(table: pd.DataFrame, tag: str = "") -> str:
    """`compute.summary` output as a markdown document with one table."""
    header = [
        "Space", "Method", "Seeds", "Final epoch", "Test error", "Regret",
        "Hessian eigenvalue", "Best test error (epoch)", "Seconds / epoch",
    ]  # fmt: skip
    lines = [
        f"# {_titled('Search summary', tag)}",
        "",
        "Test error, regret and Hessian eigenvalue at each run's final epoch: mean ± std over seeds.",
        "Best test error: the lowest seed-mean test error over all epochs, with its epoch (epochs completed).",
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


def final_error_markdown(stats: pd.DataFrame, title: str, tag: str = "", missing: list[str] | None = None) -> str:
    """`compute.final_error_table` output as markdown: one row per method, one column per space,
    each cell 'mean ± std (n)' of the final test error over n seeds."""
    spaces = sorted(int(s) for s in stats["space"].unique())
    lines = [
        f"# {_titled(title, tag)}",
        "",
        "Final test error of each run (its selected row, else its last epoch): mean ± std over n seeds.",
        "",
        "| Method | " + " | ".join(f"Space {s}" for s in spaces) + " |",
        "|:---|" + "---:|" * len(spaces),
    ]
    for method in dict.fromkeys(stats["method"]):
        rows = stats[stats["method"] == method].set_index("space")
        cells = [
            f"{_pm(rows.at[s, 'mean'], rows.at[s, 'std'], '.4f')} ({rows.at[s, 'seeds']})" if s in rows.index else "n/a"
            for s in spaces
        ]
        lines.append(f"| {rows['label'].iloc[0]} | " + " | ".join(cells) + " |")
    if missing:
        lines += ["", f"Not in the table (no runs): {', '.join(missing)}."]
    return "\n".join(lines) + "\n"
