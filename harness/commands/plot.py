"""`python -m harness plot`: trajectory figures and a summary table from a results folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def make_plots(results_dir: Path, out: Path, log_y: bool = False, regret: bool = False) -> list[Path]:
    """Collect the runs under `results_dir` and draw the figures into `out`."""
    import plots
    from benchmarks.errors import DataFileError
    from harness.commands.collect import collect_to_files

    parquet, _, _ = collect_to_files(results_dir)
    try:
        return plots.make_figures(parquet, out, log_y=log_y, regret=regret)
    except plots.PlotsError as err:
        raise DataFileError(str(err)) from err


def _plot(args: argparse.Namespace) -> int:
    written = make_plots(Path(args.results_dir), Path(args.out), args.log_y, args.regret)
    for path in written:
        print(path)
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("plot", help="draw anytime test error and Hessian trajectories (PNG + PDF)")
    parser.add_argument("results_dir", help="a results folder of runs")
    parser.add_argument("--out", default="plots/out", help="folder for the figures (default: plots/out)")
    parser.add_argument("--log-y", action="store_true", help="logarithmic y axes")
    parser.add_argument("--regret", action="store_true", help="plot regret instead of test error")
    parser.set_defaults(handler=_plot)
