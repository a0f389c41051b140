"""Entry points: the figures of SDARTS Figs. 3-5 and the summary table from a tidy results table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from plots.compute import epoch_stats, summary
from plots.output import save_figure, save_summary
from plots.render import metric_figure, summary_markdown
from plots.style import metric_label
from plots.table import benchmark_tag, check_table, read_table, require_columns

TableLike = pd.DataFrame | str | Path


def load_table(table: TableLike) -> pd.DataFrame:
    """A checked table from a DataFrame or from a .parquet/.csv path."""
    if isinstance(table, pd.DataFrame):
        return check_table(table, source="results table (DataFrame)")
    return read_table(table)


def _build(table: pd.DataFrame, log_y: bool, regret: bool) -> dict[str, Figure]:
    tag = benchmark_tag(table)
    spaces = sorted(int(s) for s in table["space"].unique())
    metric = "regret" if regret else "test_error"
    require_columns(table, (metric,))
    built = {
        f"anytime_{metric}": metric_figure(
            epoch_stats(table, metric), spaces, title=f"Anytime {metric_label(metric)}",
            ylabel=metric_label(metric), tag=tag, log_y=log_y,
        )
    }  # fmt: skip
    hessian = epoch_stats(table, "hessian_eigenvalue") if "hessian_eigenvalue" in table.columns else None
    if hessian is not None and not hessian.empty:  # optimizers without any value (ENAS) are already absent
        built["hessian_eigenvalue"] = metric_figure(
            hessian, spaces, title="Dominant Hessian eigenvalue",
            ylabel=metric_label("hessian_eigenvalue"), tag=tag, log_y=log_y,
        )  # fmt: skip
    return built


def figures(table: TableLike, log_y: bool = False, regret: bool = False) -> dict[str, Figure]:
    """Build (not save) the figures, keyed by file stem.

    'anytime_test_error' (or 'anytime_regret' with `regret=True`) and 'hessian_eigenvalue'
    (left out when the table has no Hessian values at all).
    """
    return _build(load_table(table), log_y, regret)


def make_figures(table: TableLike, out_dir: str | Path, log_y: bool = False, regret: bool = False) -> list[Path]:
    """Write the figures (PNG and PDF) and summary.md/summary.csv to `out_dir`; return the paths written."""
    table = load_table(table)
    out = Path(out_dir)
    written: list[Path] = []
    for stem, fig in _build(table, log_y, regret).items():
        written += save_figure(fig, out, stem)
    stats = summary(table)
    written += save_summary(stats, summary_markdown(stats, benchmark_tag(table)), out)
    return written
