"""Entry points: the figures of SDARTS Figs. 3-5, the preset comparisons (`plots.presets`) and
the summary tables, from a tidy results table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from plots.compute import epoch_stats, final_error_table, summary
from plots.errors import PlotsError
from plots.output import save_figure, save_summary
from plots.presets import FIGURE_CHOICES, FIGURES, FigurePreset
from plots.render import final_error_markdown, metric_figure, summary_markdown
from plots.style import DEFAULT_SIZE, label_for, metric_label
from plots.table import benchmark_tag, check_table, read_table, require_columns

TableLike = pd.DataFrame | str | Path


def load_table(table: TableLike) -> pd.DataFrame:
    """A checked table from a DataFrame or from a .parquet/.csv path."""
    if isinstance(table, pd.DataFrame):
        return check_table(table, source="results table (DataFrame)")
    return read_table(table)


def _build(
    table: pd.DataFrame, log_y: bool, regret: bool, size: str, prefix: str = "", title: str = "", order=None
) -> dict[str, Figure]:
    tag = benchmark_tag(table)
    spaces = sorted(int(s) for s in table["space"].unique())
    metric = "regret" if regret else "test_error"
    require_columns(table, (metric,))
    stem = f"{prefix}_{metric}" if prefix else f"anytime_{metric}"
    heading = f"{title}: {metric_label(metric)}" if title else f"Anytime {metric_label(metric)}"
    built = {
        stem: metric_figure(
            epoch_stats(table, metric), spaces, title=heading,
            ylabel=metric_label(metric), tag=tag, log_y=log_y, size=size, order=order,
        )
    }  # fmt: skip
    hessian = epoch_stats(table, "hessian_eigenvalue") if "hessian_eigenvalue" in table.columns else None
    if hessian is not None and not hessian.empty:  # methods without any value (ENAS) are already absent
        built[f"{prefix}_hessian_eigenvalue" if prefix else "hessian_eigenvalue"] = metric_figure(
            hessian, spaces, title=f"{title}: Hessian eigenvalue" if title else "Dominant Hessian eigenvalue",
            ylabel=metric_label("hessian_eigenvalue"), tag=tag, log_y=log_y, size=size, order=order,
        )  # fmt: skip
    return built


def preset_table(table: pd.DataFrame, preset: FigurePreset | str) -> tuple[pd.DataFrame, list[str], list[str]]:
    """(the rows of `preset`'s methods, the methods present, the methods missing) of a checked table."""
    preset = FIGURES[preset] if isinstance(preset, str) else preset
    present = [m for m in preset.methods if (table["method"] == m).any()]
    missing = [m for m in preset.methods if m not in present]
    return table[table["method"].isin(present)], present, missing


def figures(
    table: TableLike, log_y: bool = False, regret: bool = False, size: str = DEFAULT_SIZE, figure: str = "trajectories"
) -> dict[str, Figure]:
    """Build (not save) the figures, keyed by file stem.

    figure="trajectories" (default): 'anytime_test_error' (or 'anytime_regret' with `regret=True`)
    and 'hessian_eigenvalue' (left out when the table has no Hessian values at all), every method
    of the table. A preset name ("fig3", "regularisation"): '<name>_test_error' and
    '<name>_hessian_eigenvalue' with the preset's methods that the table has.
    """
    table = load_table(table)
    if figure == "trajectories":
        return _build(table, log_y, regret, size)
    if figure not in FIGURES:
        raise PlotsError(f"unknown figure {figure!r}; choose from {', '.join(FIGURE_CHOICES)}")
    subset, present, _ = preset_table(table, figure)
    if not present:
        return {}
    return _build(subset, log_y, regret, size, prefix=figure, title=FIGURES[figure].title, order=present)


def make_figures(
    table: TableLike,
    out_dir: str | Path,
    log_y: bool = False,
    regret: bool = False,
    size: str = DEFAULT_SIZE,
    figure: str = "trajectories",
    report: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write figures (PNG and PDF, TrueType fonts) and summaries to `out_dir`; return the paths written.

    figure: "trajectories" (every method: the figures of `figures` plus summary.md/summary.csv),
    a preset of `plots.presets.FIGURES` (its figures plus <name>_summary.md/.csv, the final test
    error per space, mean ± std over seeds), or "all". size: a `plots.style.SIZES` preset.
    report: called with one line per preset saying which of its methods the table lacks.
    """
    if figure not in FIGURE_CHOICES:
        raise PlotsError(f"unknown figure {figure!r}; choose from {', '.join(FIGURE_CHOICES)}")
    table = load_table(table)
    out = Path(out_dir)
    written: list[Path] = []
    if figure in ("trajectories", "all"):
        for stem, fig in _build(table, log_y, regret, size).items():
            written += save_figure(fig, out, stem)
        stats = summary(table)
        written += save_summary(stats, summary_markdown(stats, benchmark_tag(table)), out)
    for name in FIGURES if figure == "all" else [figure] if figure in FIGURES else []:
        written += _write_preset(table, FIGURES[name], out, log_y, regret, size, report)
    if figure in FIGURES and not written:
        raise PlotsError(
            f"the table has none of {figure}'s methods ({', '.join(FIGURES[figure].methods)}); nothing was drawn: "
            "run them, or plot without --figure to draw the methods the table has"
        )
    return written


def _write_preset(
    table: pd.DataFrame,
    preset: FigurePreset,
    out: Path,
    log_y: bool,
    regret: bool,
    size: str,
    report: Callable[[str], None] | None,
) -> list[Path]:
    subset, present, missing = preset_table(table, preset)
    if report is not None:
        drawn = ", ".join(label_for(m) for m in present) or "nothing"
        lacking = f"; not in the table: {', '.join(missing)}" if missing else ""
        report(f"{preset.name}: {drawn}{lacking}")
    if not present:
        return []
    written: list[Path] = []
    built = _build(subset, log_y, regret, size, prefix=preset.name, title=preset.title, order=present)
    for stem, fig in built.items():
        written += save_figure(fig, out, stem)
    stats = final_error_table(subset, present)
    markdown = final_error_markdown(stats, f"{preset.title}: final test error", benchmark_tag(table), missing)
    written += save_summary(stats, markdown, out, stem=f"{preset.name}_summary")
    return written
