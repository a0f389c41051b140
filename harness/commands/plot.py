"""`python -m harness plot`: trajectory figures and a summary table from a results folder."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

FIGURE_CHOICES = ("trajectories", "fig3", "regularisation", "all")
"""`plots.presets.FIGURE_CHOICES` (kept here so that `--help` does not import matplotlib)."""
SIZE_CHOICES = ("two-column", "one-column", "notebook")
"""`plots.style.SIZES`."""


def tidy_table(source: Path, out: Path) -> Path:
    """The tidy table to draw from: `source` itself when it is a .parquet/.csv file; for a folder,
    its runs collected into all_epochs.parquet (or that file as it stands when the folder holds
    no run directories, e.g. a table copied from elsewhere). A folder that cannot be written
    (read-only storage) gets its collected table written into `out` instead."""
    from harness.commands.collect import collect_to_files
    from harness.results import COLLECTED_FILE, TABLE_FILE, run_directories, unfinished_runs
    from harness.storage import is_storage_error

    source = Path(source)
    if source.is_file():
        return source
    if (source / TABLE_FILE).is_file():  # one run's directory
        return source / TABLE_FILE
    collected = source / f"{COLLECTED_FILE}.parquet"
    if source.is_dir() and not run_directories(source) and collected.is_file():
        return collected
    try:
        parquet, _, _ = collect_to_files(source)
    except OSError as err:
        if not is_storage_error(err):
            raise
        parquet, _, _ = collect_to_files(source, out)
    unfinished = unfinished_runs(source)
    if unfinished:
        print(f"warning: drawn with their rows so far, not complete: {', '.join(unfinished)}", file=sys.stderr)
    return parquet


def default_out(source: Path) -> Path:
    """Where `plot` writes by default: SOURCE/figures for a folder (a results folder or a run),
    else figures/ beside the table file; never inside the source tree."""
    source = Path(source)
    return (source if source.is_dir() else source.parent) / "figures"


def make_plots(
    results_dir: Path | Sequence[Path],
    out: Path | None = None,
    log_y: bool = False,
    regret: bool = False,
    *,
    size: str = "two-column",
    figure: str = "trajectories",
    report: Callable[[str], None] | None = None,
    alignment: str = "epochs",
) -> list[Path]:
    """Draw the figures of a results folder, a run's directory or a tidy table file (or several of
    them, drawn as one table) into `out` (default: `default_out` of the first); see `tidy_table`
    and `plots.make_figures` for `size`, `figure` and `report`; `alignment`: see
    `plots.alignment`."""
    import plots
    from benchmarks.errors import DataFileError
    from plots.alignment import align
    from plots.table import combine_tables

    sources = [Path(results_dir)] if isinstance(results_dir, (str, Path)) else [Path(p) for p in results_dir]
    out = Path(out) if out is not None else default_out(sources[0])
    try:
        tables = {str(source): plots.read_table(tidy_table(source, out)) for source in sources}
        table = combine_tables(tables)
        table = align(table, alignment)
        return plots.make_figures(table, out, log_y=log_y, regret=regret, size=size, figure=figure, report=report)
    except plots.PlotsError as err:
        raise DataFileError(str(err)) from err


def _plot(args: argparse.Namespace) -> int:
    sources = [Path(p) for p in args.results_dir]
    written = make_plots(
        sources,
        args.out and Path(args.out),
        args.log_y,
        args.regret,
        size=args.size,
        figure=args.figure,
        report=print,
        alignment=args.alignment,
    )
    for path in written:
        print(path)
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="draw anytime test error and Hessian trajectories (PNG + PDF) and a summary table",
        description="Collect the runs of RESULTS_DIR into its tidy table (all_epochs.parquet) and draw from that "
        "table only: anytime test error (or regret) and the dominant Hessian eigenvalue against epochs completed, "
        "mean ± std over seeds (n in the legend), one panel per search space, PNG and PDF (TrueType fonts); plus "
        "summary.md and summary.csv.",
    )
    parser.add_argument(
        "results_dir",
        nargs="+",
        help="a results folder of runs, a run's directory, or a tidy table (.parquet or .csv); several are drawn "
        "as one table (e.g. a sweep's folder and the methods `select` chose)",
    )
    parser.add_argument(
        "--out", help="folder for the figures (default: RESULTS_DIR/figures, or figures/ beside a table file)"
    )
    parser.add_argument(
        "--figure",
        choices=FIGURE_CHOICES,
        default="trajectories",
        help="trajectories: every method in the table (default); fig3: DARTS, Hessian regularisation, SDARTS-RS, "
        "SDARTS-ADV (SDARTS Fig. 3); regularisation: DARTS-ES, R-DARTS(L2), R-DARTS(DP), Hessian regularisation "
        "against SDARTS-RS/ADV, with a table of the final test error per space; all: every one of them",
    )
    parser.add_argument(
        "--size",
        choices=SIZE_CHOICES,
        default="two-column",
        help="two-column: 6.75 in wide, panels side by side (default); one-column: 3.25 in, panels stacked; "
        "notebook: large, for screens",
    )
    parser.add_argument("--log-y", action="store_true", help="logarithmic y axes")
    parser.add_argument("--regret", action="store_true", help="plot regret instead of test error")
    parser.add_argument(
        "--alignment",
        choices=("epochs", "reference"),
        default="epochs",
        help="epochs: every column after k epochs, as the table is written (default); reference: the reference "
        "code's pairing, the test error after e epochs with the Hessian after e + 1 (docs/results.md)",
    )
    parser.set_defaults(handler=_plot)
