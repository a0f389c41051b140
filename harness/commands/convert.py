"""`python -m harness convert PATH [--out CACHE] [--force]`: turn a NAS-Bench-101 .tfrecord into the fast cache."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.errors import HarnessError
from benchmarks.nasbench101.convert import convert, default_cache_path, is_current, read_metadata


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert a NAS-Bench-101 .tfrecord into the harness's cache",
        description="Convert a NAS-Bench-101 .tfrecord (official or synthetic) into a columnar .npz cache.",
    )
    parser.add_argument("path", help="the .tfrecord file")
    parser.add_argument(
        "--out",
        help="cache file to write (default: X.nb101.npz beside X.tfrecord, "
        "or in the cache folder if that folder is not writable)",
    )
    parser.add_argument("--force", action="store_true", help="convert even if the cache is up to date")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.out and Path(args.out).is_dir():
        raise HarnessError(
            f"--out {args.out} is a folder: give the cache file to write, e.g. {Path(args.out) / 'table.nb101.npz'}"
        )
    out = args.out or default_cache_path(args.path)
    if not args.force and is_current(out, args.path):
        print(f"{out} is up to date with {args.path}; nothing to do (--force converts anyway)")
        return 0
    start = time.perf_counter()
    cache = convert(args.path, out, force=True, progress=True)
    meta = read_metadata(cache)
    kind = "synthetic data, not NAS-Bench-101" if meta["synthetic"] else "NAS-Bench-101"
    print(
        f"wrote {cache}: {meta['num_models']} models, {meta['num_records']} records, budgets {meta['budgets']} "
        f"({kind}) in {time.perf_counter() - start:.1f} s"
    )
    return 0
