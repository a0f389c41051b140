"""`python -m harness plot`: trajectory figures and a summary table from a results folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def tidy_table(source: Path) -> Path:
    """The tidy table to draw from: `source` itself when it is a .parquet/.csv file; for a folder,
    its runs collected into all_epochs.parquet (or that file as it stands when the folder holds
    no run directories, e.g. a table copied from elsewhere)."""
    from harness.commands.collect import collect_to_files
    from harness.results import COLLECTED_FILE, run_directories

    source = Path(source)
    if source.is_file():
        return source
    collected = source / f"{COLLECTED_FILE}.parquet"
    if source.is_dir() and not run_directories(source) and collected.is_file():
        return collected
    parquet, _, _ = collect_to_files(source)
    return parquet


def make_plots(results_dir: Path, out: Path, log_y: bool = False, regret: bool = False) -> list[Path]:
    """Draw the figures of a results folder (or a tidy table file) into `out`; see `tidy_table`."""
    import plots
    from benchmarks.errors import DataFileError

    table = tidy_table(results_dir)
    try:
        return plots.make_figures(table, out, log_y=log_y, regret=regret)
    except plots.PlotsError as err:
        raise DataFileError(str(err)) from err


def _plot(args: argparse.Namespace) -> int:
    written = make_plots(Path(args.results_dir), Path(args.out), args.log_y, args.regret)
    for path in written:
        print(path)
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="draw anytime test error and Hessian trajectories (PNG + PDF) and a summary table",
        description="Collect the runs of RESULTS_DIR into its tidy table (all_epochs.parquet) and draw from that "
        "table only: anytime test error (or regret) and the dominant Hessian eigenvalue per search epoch, "
        "mean ± std over seeds, one panel per search space; plus summary.md and summary.csv.",
    )
    parser.add_argument("results_dir", help="a results folder of runs, or a tidy table (.parquet or .csv)")
    parser.add_argument("--out", default="plots/out", help="folder for the figures (default: %(default)s)")
    parser.add_argument("--log-y", action="store_true", help="logarithmic y axes")
    parser.add_argument("--regret", action="store_true", help="plot regret instead of test error")
    parser.set_defaults(handler=_plot)
