"""`python -m harness fetch nasbench101 [--full] [--dest DIR]`: download a NAS-Bench-101 table and convert it.

The official files (SPEC §2). Their exact byte sizes are not published anywhere we could find, so
a download is checked against the server's Content-Length.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.nasbench101.convert import convert
from harness.download import download

URL = "https://storage.googleapis.com/nasbench/"
ONLY108 = "nasbench_only108.tfrecord"
"""423,624 models x 3 repeats at 108 epochs, about 499 MB."""
FULL = "nasbench_full.tfrecord"
"""The same models at budgets 4, 12, 36 and 108 epochs, about 1.95 GB."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fetch",
        help="download a benchmark table",
        description="Download the official NAS-Bench-101 table (resumable) and convert it for fast loading.",
    )
    parser.add_argument("what", choices=["nasbench101"], help="what to download")
    parser.add_argument(
        "--full", action="store_true", help=f"{FULL} (budgets 4/12/36/108, ~1.95 GB) instead of {ONLY108} (~499 MB)"
    )
    parser.add_argument("--dest", default="data", help="folder to put it in (default: %(default)s)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    name = FULL if args.full else ONLY108
    path = download(URL + name, f"{args.dest}/{name}")
    print(f"downloaded {path}")
    start = time.perf_counter()
    cache = convert(path, progress=True)
    print(f"converted to {cache} in {time.perf_counter() - start:.0f} s; use it with --benchmark {path}")
    return 0
