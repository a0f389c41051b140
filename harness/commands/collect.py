"""`python -m harness collect`: all runs of a results folder in one tidy table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def collect_with_warnings(results_dir: Path) -> pd.DataFrame:
    """`results.collect`, leaving out the runs whose table cannot be read, with a warning on stderr
    (an error naming them when no table can be read)."""
    from benchmarks.errors import DataFileError, MissingFileError
    from harness.results import collect

    skipped: list[str] = []
    try:
        frame = collect(results_dir, skipped)
    except MissingFileError:
        if not skipped:
            raise
        raise DataFileError(f"no readable run table under {results_dir}: {'; '.join(skipped)}") from None
    for reason in skipped:
        print(f"warning: left out: {reason}", file=sys.stderr)
    return frame


def collect_to_files(results_dir: Path, out: Path | None = None) -> tuple[Path, Path, int]:
    """Write all_epochs.parquet and .csv into `out` (default: RESULTS_DIR, which is only read
    otherwise); returns their paths and the row count. Runs whose table cannot be read are left
    out, with a warning on stderr."""
    from benchmarks.errors import MissingFileError
    from harness.results import COLLECTED_FILE, write_table

    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise MissingFileError(f"results folder {results_dir} does not exist (or is not a folder)")
    frame = collect_with_warnings(results_dir)
    out = Path(out) if out is not None else results_dir
    parquet, csv = out / f"{COLLECTED_FILE}.parquet", out / f"{COLLECTED_FILE}.csv"
    write_table(parquet, frame)
    write_table(csv, frame)
    return parquet, csv, len(frame)


def _collect(args: argparse.Namespace) -> int:
    from benchmarks.errors import DataFileError
    from harness.results import read_status, run_directories, shown_state

    results_dir = Path(args.results_dir)
    parquet, csv, rows = collect_to_files(results_dir, args.out and Path(args.out))
    print(f"{parquet} (+ {csv.name}): {rows} rows")
    for run_dir in run_directories(results_dir, started=True):
        try:
            status = read_status(run_dir) or {"state": "not started", "epochs_completed": 0, "epochs": "?"}
        except DataFileError as err:
            print(f"  {run_dir.name}: status unknown ({err})")
            continue
        state = shown_state(run_dir, status)
        detail = f": {status['error']}" if status.get("error") else ""
        if state == "stopped":
            detail = ": it says running, but no process holds it (killed?); the same command resumes it"
        print(f"  {run_dir.name}: {state} ({status['epochs_completed']}/{status['epochs']} epochs){detail}")
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "collect",
        help="gather all runs' epoch tables into one (parquet + CSV)",
        description="Concatenate the epochs.parquet of every run under RESULTS_DIR into one tidy table, "
        "RESULTS_DIR/all_epochs.parquet and all_epochs.csv (sorted by space, optimizer, seed, epoch), and list "
        "each run's status. The columns are described in docs/results.md.",
    )
    parser.add_argument("results_dir", help="a results folder of runs (a sweep's or a run's --out)")
    parser.add_argument(
        "--out", help="folder to write all_epochs.parquet and .csv into (default: RESULTS_DIR; it is only read then)"
    )
    parser.set_defaults(handler=_collect)
