"""`python -m harness export`: a run's (or a results folder's) table as CSV."""

from __future__ import annotations

import argparse
from pathlib import Path


def _export(args: argparse.Namespace) -> int:
    from harness.results import TABLE_FILE, collect, read_table, write_table

    source = Path(args.path)
    frame = read_table(source / TABLE_FILE) if (source / TABLE_FILE).exists() else collect(source)
    out = Path(args.out) if args.out else (source / TABLE_FILE).with_suffix(".csv")
    write_table(out, frame)
    print(f"{out}: {len(frame)} rows")
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("export", help="write a run's (or all runs') epochs table as CSV")
    parser.add_argument("path", help="a run directory, or a results folder of runs")
    parser.add_argument("--out", help="CSV file to write (default: epochs.csv beside the table)")
    parser.set_defaults(handler=_export)
