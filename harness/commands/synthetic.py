"""`python -m harness synthetic [--out PATH] [--models N] [--full] [--seed S]`: write a made-up NAS-Bench-101 table."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.errors import HarnessError
from benchmarks.nasbench101.synthetic import BUDGETS, FULL_BUDGETS, write_synthetic


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synthetic",
        help="write a synthetic (made-up) NAS-Bench-101 table",
        description="Write a .tfrecord in the official NAS-Bench-101 format with made-up numbers for every "
        "model of the NAS-Bench-1Shot1 spaces (3 repeats). It is marked synthetic: results built "
        "on it never pass as NAS-Bench-101.",
    )
    parser.add_argument(
        "--out", default="data/nasbench_synthetic.tfrecord", help="file to write (default: %(default)s)"
    )
    parser.add_argument(
        "--models",
        type=int,
        help="total number of models: fewer than the spaces hold = a random subset (for query and tests: a "
        "search needs all of its space's models), more = padded with random other NAS-Bench-101 models (at most "
        "423624)",
    )
    parser.add_argument(
        "--spaces",
        type=int,
        nargs="*",
        default=[1, 2, 3],
        choices=[1, 2, 3],
        help="NAS-Bench-1Shot1 spaces whose models to include (default: 1 2 3)",
    )
    parser.add_argument("--full", action="store_true", help="budgets 4, 12, 36, 108 instead of 108 only")
    parser.add_argument("--seed", type=int, default=0, help="seed of the made-up noise (default: %(default)s)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if Path(args.out).is_dir():
        raise HarnessError(
            f"--out {args.out} is a folder: give the file to write, e.g. {Path(args.out) / 'synthetic.tfrecord'}"
        )
    start = time.perf_counter()
    budgets = FULL_BUDGETS if args.full else BUDGETS
    models, records = write_synthetic(args.out, spaces=args.spaces, models=args.models, budgets=budgets, seed=args.seed)
    print(
        f"wrote {args.out}: {models} models, {records} records, budgets {list(budgets)} in "
        f"{time.perf_counter() - start:.1f} s (synthetic data, not NAS-Bench-101)"
    )
    return 0
