"""`python -m harness query HASH [--benchmark PATH|synthetic] [--epochs E]`: print a model's results."""

from __future__ import annotations

import argparse

from benchmarks.nasbench101.convert import RECORD_COLUMNS
from harness.benchmark import load_benchmark
from harness.config import DEFAULT_BENCHMARK


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "query",
        help="print every repeat of a NAS-Bench-101 model",
        description="Look a model up by its NAS-Bench-101 hash and print every repeat and the mean errors.",
    )
    parser.add_argument("hash", help="the model's NAS-Bench-101 hash (32 hex digits)")
    parser.add_argument(
        "--benchmark",
        default=DEFAULT_BENCHMARK,
        help="NAS-Bench-101 .tfrecord or cache, or 'synthetic' (default: %(default)s)",
    )
    parser.add_argument("--epochs", type=int, default=108, help="training budget (default: %(default)s)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    table = load_benchmark(args.benchmark)
    rows = table.query(args.hash, args.epochs)
    print(f"{table.name} table {table.path}: model {args.hash.lower()}: {table.spec(args.hash)}")
    print(f"trainable parameters: {rows[0]['trainable_parameters']}")
    print("repeat " + " ".join(f"{name:>27}" for name in RECORD_COLUMNS))
    for row in rows:
        print(f"{row['repeat']:>6} " + " ".join(f"{row[name]:>27.6f}" for name in RECORD_COLUMNS))
    errors = table.mean_errors(args.hash, args.epochs)
    print(
        f"mean over {len(rows)} repeats at {args.epochs} epochs: test error {errors['test_error']:.6f} "
        f"± {errors['test_error_std']:.6f}, validation error {errors['valid_error']:.6f} "
        f"± {errors['valid_error_std']:.6f}"
    )
    if table.synthetic:
        print("note: synthetic table: made-up numbers, not NAS-Bench-101 results")
    return 0
