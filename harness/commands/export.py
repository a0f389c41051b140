"""`python -m harness export`: a run's (or a results folder's) table as CSV."""

from __future__ import annotations

import argparse
from pathlib import Path


def _export(args: argparse.Namespace) -> int:
    from benchmarks.errors import MissingFileError
    from harness.commands.collect import collect_with_warnings
    from harness.config import SettingError
    from harness.results import COLLECTED_FILE, TABLE_FILE, read_table, write_table

    source = Path(args.path)
    if not source.is_dir():
        raise MissingFileError(f"{source} is not a run directory nor a results folder")
    if args.out and Path(args.out).suffix.lower() != ".csv":
        raise SettingError(f"export writes CSV: give --out a .csv file name, not {args.out}")
    if (source / TABLE_FILE).exists():
        frame, default = read_table(source / TABLE_FILE), (source / TABLE_FILE).with_suffix(".csv")
    else:
        frame, default = collect_with_warnings(source), source / f"{COLLECTED_FILE}.csv"
    out = Path(args.out) if args.out else default
    write_table(out, frame)
    print(f"{out}: {len(frame)} rows")
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a run's (or all runs') epochs table as CSV",
        description="Write one run's epochs.parquet, or all runs of a results folder as one table, as CSV.",
    )
    parser.add_argument("path", help="a run directory, or a results folder of runs")
    parser.add_argument(
        "--out",
        help="CSV file to write (default: RUN_DIR/epochs.csv for a run, RESULTS_DIR/all_epochs.csv for a folder)",
    )
    parser.set_defaults(handler=_export)
